/** The state cannot be trusted (unreadable, another version, another source): fail closed, exit 2. */
export class StateFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateFileError';
  }
}

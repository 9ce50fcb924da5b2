/** True for Google's own hosts (credentials belong there); false for emulators and test servers. */
export function isGoogleHost(endpoint: string): boolean {
  try {
    const host = new URL(endpoint).hostname;
    return host === 'googleapis.com' || host.endsWith('.googleapis.com');
  } catch {
    return false;
  }
}

/** gzip detection by magic bytes (1f 8b), for objects whose name or metadata may not say. */
export function isGzip(body: Buffer): boolean {
  return body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b;
}

import { randomFillSync } from 'node:crypto';

// Crockford base32, as the ULID spec requires: sortable by time, no ambiguous letters.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let poolOffset = POOL_SIZE;

/** Random bytes from a pooled buffer: one getrandom() per ~400 ids instead of one per id. */
function randomBytes(n: number): Buffer {
  if (poolOffset + n > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const out = pool.subarray(poolOffset, poolOffset + n);
  poolOffset += n;
  return out;
}

const PAIRS: string[] = Array.from({ length: 1024 }, (_, i) => ALPHABET[i >> 5]! + ALPHABET[i & 31]!);

let cachedMs = -1;
let cachedTime = '';

/** A ULID: 48-bit millisecond time + 80 random bits, 26 characters. */
export function ulid(timeMs: number = Date.now()): string {
  if (timeMs !== cachedMs) {
    // Many ids share a millisecond at high rates: encode the time part once per ms.
    let time = '';
    let t = timeMs;
    for (let i = 0; i < 10; i++) {
      time = ALPHABET[t % 32]! + time;
      t = Math.floor(t / 32);
    }
    cachedMs = timeMs;
    cachedTime = time;
  }
  const b = randomBytes(16);
  // 80 random bits as 8 lookups of 10 bits (two characters each): ids are made on every emit.
  return (
    cachedTime +
    PAIRS[((b[0]! << 8) | b[1]!) & 1023]! +
    PAIRS[((b[2]! << 8) | b[3]!) & 1023]! +
    PAIRS[((b[4]! << 8) | b[5]!) & 1023]! +
    PAIRS[((b[6]! << 8) | b[7]!) & 1023]! +
    PAIRS[((b[8]! << 8) | b[9]!) & 1023]! +
    PAIRS[((b[10]! << 8) | b[11]!) & 1023]! +
    PAIRS[((b[12]! << 8) | b[13]!) & 1023]! +
    PAIRS[((b[14]! << 8) | b[15]!) & 1023]!
  );
}

/** A short random id (for writer ids and segment names): 16 base32 characters, 80 bits. */
export function randomId(length = 16): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! & 31]!;
  return out.toLowerCase();
}

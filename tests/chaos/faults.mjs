// Damage done to stored copies on disk, as rot and accidents do it: a flipped
// bit with the mtime put back, a truncation, a file emptied, a file deleted.
// Each is recorded so the end of the run can say whether it was detected,
// repaired and served.
import { open, stat, truncate, unlink, utimes, readdir } from 'node:fs/promises';
import path from 'node:path';

export const CORRUPTION_KINDS = ['bitflip', 'truncate', 'zero', 'delete'];

/** A seeded PRNG (mulberry32): the same seed makes the same choices. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every stored copy on node `n` as { videoId, name, file } (file names with dots skipped). */
export async function copiesOn(n) {
  const root = path.join(n.node.dataDir, 'data', 'content');
  const out = [];
  let ids = [];
  try { ids = await readdir(root); } catch { return out; }
  for (const videoId of ids) {
    let names = [];
    try { names = await readdir(path.join(root, videoId)); } catch { continue; }
    for (const name of names) {
      if (name.startsWith('.') || name.includes('.tmp')) continue;
      out.push({ videoId, name, file: path.join(root, videoId, name) });
    }
  }
  return out;
}

/**
 * Damages `file` as `kind` says, leaving its mtime (and atime) as they were
 * where the file remains. Returns a description of what was done.
 */
export async function corrupt(file, kind, rng) {
  const before = await stat(file);
  switch (kind) {
    case 'bitflip': {
      if (before.size === 0) throw new Error('empty file');
      const offset = Math.floor(rng() * before.size);
      const bit = Math.floor(rng() * 8);
      const fh = await open(file, 'r+');
      try {
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, offset);
        b[0] ^= 1 << bit;
        await fh.write(b, 0, 1, offset);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await utimes(file, before.atime, before.mtime);
      return `bit ${bit} of byte ${offset} of ${before.size} flipped, mtime restored`;
    }
    case 'truncate': {
      const size = Math.floor(before.size / 2);
      await truncate(file, size);
      await utimes(file, before.atime, before.mtime);
      return `truncated from ${before.size} to ${size} bytes, mtime restored`;
    }
    case 'zero':
      await truncate(file, 0);
      await utimes(file, before.atime, before.mtime);
      return `emptied (was ${before.size} bytes), mtime restored`;
    case 'delete':
      await unlink(file);
      return `deleted (${before.size} bytes)`;
    default:
      throw new Error(`unknown corruption ${kind}`);
  }
}

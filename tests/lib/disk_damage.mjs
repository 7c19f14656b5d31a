// Damage to stored files as a failing disk would do it: bytes change or
// vanish while the file's mtime stays what it was, so that only a node that
// reads and checks the data can tell.
import assert from 'node:assert/strict';
import { open, stat, truncate } from 'node:fs/promises';
import { run } from './streamgrid.mjs';

/** The file's mtime in nanoseconds; null if it is gone. */
async function mtimeOf(file) {
  try {
    return (await stat(file, { bigint: true })).mtimeNs;
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Sets the mtime of `file` back to `ns`, to the nanosecond (fs.utimes rounds
 * to microseconds; touch does not). False if the file is gone by then (a node
 * may move a damaged file away at any moment).
 */
export async function restoreMtime(file, ns) {
  const stamp = `@${ns / 1000000000n}.${String(ns % 1000000000n).padStart(9, '0')}`;
  await run('touch', ['-c', '-m', '-d', stamp, file]);
  const now = await mtimeOf(file);
  if (now === null) return false;
  assert.equal(now, ns, `mtime of ${file} put back`);
  return true;
}

/**
 * XORs the byte at `offset` of `file` with `mask` (one bit by default) and
 * puts the mtime back; doing it twice restores the file. False if the file is
 * gone.
 */
export async function flipBits(file, offset, mask = 0x10) {
  const ns = await mtimeOf(file);
  if (ns === null) return false;
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] ^= mask;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
  return restoreMtime(file, ns);
}

/** Cuts `file` to `size` bytes and puts the mtime back. False if it is gone. */
export async function truncateKeepingMtime(file, size) {
  const ns = await mtimeOf(file);
  if (ns === null) return false;
  try {
    await truncate(file, size);
  } catch (e) {
    if (e.code === 'ENOENT') return false;
    throw e;
  }
  return restoreMtime(file, ns);
}

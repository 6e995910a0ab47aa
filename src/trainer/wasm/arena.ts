// The float32 arena: one shared WebAssembly.Memory per thread that holds a model's parameters,
// gradients, activations, optimizer state and batch buffers, so that the WebAssembly kernels work
// on them in place, with no copies. Arrays are Float32Array views into it, 64-byte aligned (a
// cache line; vectors never straddle one).
//
// The memory is created with `shared: true`: growing a shared memory never detaches the views
// already handed out (each keeps its own, shorter SharedArrayBuffer object over the same bytes),
// and helper threads can later run kernels on the same memory (see arenaMemory).
//
// Blocks are recycled: when an array returned by allocFloat32 or allocInt32 becomes unreachable (a
// model that is dropped), a FinalizationRegistry gives its block back, and a later allocation may
// reuse it (zeroed again). Subarrays do not keep a block alive: whoever takes views of an arena
// array keeps the array itself too (a Model keeps `params` while its layers hold views of it). And
// an arena array posted to another thread is shared, not copied: post copies (slice, from).
//
// When WebAssembly or shared memory is not available, or the memory cannot grow any more,
// allocFloat32 returns ordinary Float32Arrays, and the kernels take their JS path on them.

/** Alignment of every block, in bytes. */
export const ARENA_ALIGN = 64;
const PAGE = 65536;
/** 4 GiB, all a 32-bit address reaches. V8 reserves address space for it; pages are committed as
 *  the memory grows. */
const MAX_PAGES = 65536;
const INITIAL_PAGES = 64;

interface Block {
  start: number;
  bytes: number;
}

interface ArenaState {
  memory: WebAssembly.Memory;
  /** memory.buffer as of the last growth; views are made on it. */
  current: SharedArrayBuffer;
  /** Every buffer object the memory has had (one per growth): views on any of them are ours. */
  buffers: SharedArrayBuffer[];
  /** Bytes below `top` are blocks or free; above is unused. Byte 0..63 is never handed out, so
   *  address 0 can mean "none". */
  top: number;
  /** Bytes from here on have never been handed out, so they are still zero (top can come back
   *  down below this when the blocks at the top are freed). */
  clean: number;
  /** Free blocks below top, by start address, never adjacent (they are merged). */
  free: Block[];
  /** Bytes in live blocks. */
  live: number;
  /** Set on a helper thread that adopted another thread's arena (adoptArena): it never frees and
   *  takes blocks only from the regions that thread reserved for it. */
  regions?: { permanent: Region; current: Region | null };
}

/** A reserved stretch of another thread's arena that a helper thread allocates from, bottom up. */
interface Region {
  next: number;
  end: number;
}

let state: ArenaState | null | undefined;

function createState(): ArenaState | null {
  try {
    const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared: true });
    const current = memory.buffer as unknown as SharedArrayBuffer;
    return { memory, current, buffers: [current], top: ARENA_ALIGN, clean: ARENA_ALIGN, free: [], live: 0 };
  } catch {
    // No WebAssembly, or no shared memory in this environment.
    return null;
  }
}

function arena(): ArenaState | null {
  if (state === undefined) state = createState();
  return state;
}

/** Gives a block back, merging it with free neighbours; a free block at the top lowers the top. */
function release(block: Block): void {
  const s = state;
  if (!s) return;
  s.live -= block.bytes;
  const free = s.free;
  let i = 0;
  while (i < free.length && free[i].start < block.start) i++;
  let { start, bytes } = block;
  if (i > 0 && free[i - 1].start + free[i - 1].bytes === start) {
    i--;
    start = free[i].start;
    bytes += free[i].bytes;
    free.splice(i, 1);
  }
  if (i < free.length && start + bytes === free[i].start) {
    bytes += free[i].bytes;
    free.splice(i, 1);
  }
  if (start + bytes === s.top) s.top = start;
  else free.splice(i, 0, { start, bytes });
}

const registry = new FinalizationRegistry<Block>(release);

/** The smallest free block that fits (best fit keeps large blocks for large arrays), split. */
function takeFree(s: ArenaState, bytes: number): number {
  let best = -1;
  for (let i = 0; i < s.free.length; i++) {
    const b = s.free[i].bytes;
    if (b >= bytes && (best < 0 || b < s.free[best].bytes)) best = i;
  }
  if (best < 0) return -1;
  const block = s.free[best];
  const start = block.start;
  if (block.bytes === bytes) s.free.splice(best, 1);
  else {
    block.start += bytes;
    block.bytes -= bytes;
  }
  return start;
}

/** Grows the memory so that `end` bytes exist, by at least half its size (so that growth, and the
 *  buffer objects it leaves behind, stay few). Returns false when it cannot. */
function ensure(s: ArenaState, end: number): boolean {
  const have = s.current.byteLength;
  if (end <= have) return true;
  const pages = have / PAGE;
  const needed = Math.ceil((end - have) / PAGE);
  const grow = Math.min(Math.max(needed, Math.ceil(pages / 2)), MAX_PAGES - pages);
  if (grow < needed) return false;
  try {
    s.memory.grow(grow);
  } catch {
    // Out of memory (or of address space): try exactly what is needed before giving up.
    try {
      s.memory.grow(needed);
    } catch {
      return false;
    }
  }
  s.current = s.memory.buffer as unknown as SharedArrayBuffer;
  s.buffers.push(s.current);
  return true;
}

/** A zeroed block of `length` 4-byte values, as a view made by `view`; null when the arena is
 *  unavailable or full. */
function allocate<T extends Float32Array | Int32Array>(
  length: number,
  view: (buffer: SharedArrayBuffer, start: number, length: number) => T,
): T | null {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`arena: bad length ${length}`);
  const s = arena();
  if (!s || length === 0) return null;
  const bytes = Math.ceil((length * 4) / ARENA_ALIGN) * ARENA_ALIGN;
  if (s.regions) return allocateInRegion(s, s.regions.current ?? s.regions.permanent, bytes, length, view);
  let start = takeFree(s, bytes);
  if (start < 0) {
    if (s.top + bytes > MAX_PAGES * PAGE || !ensure(s, s.top + bytes)) return null;
    start = s.top;
    s.top += bytes;
  }
  s.live += bytes;
  const array = view(s.current, start, length);
  // Memory never handed out is zero; any other may hold a dropped array's values.
  if (start < s.clean) array.fill(0);
  s.clean = Math.max(s.clean, start + bytes);
  registry.register(array, { start, bytes });
  return array;
}

/** allocate on a helper thread: the next block of `region` (zeroed: the region may hold an earlier
 *  tenant's values), or null when it is full. */
function allocateInRegion<T extends Float32Array | Int32Array>(
  s: ArenaState,
  region: Region,
  bytes: number,
  length: number,
  view: (buffer: SharedArrayBuffer, start: number, length: number) => T,
): T | null {
  if (region.next + bytes > region.end) return null;
  const start = region.next;
  region.next += bytes;
  refresh(s);
  const array = view(s.current, start, length);
  array.fill(0);
  s.live += bytes;
  return array;
}

/** Takes up the memory's new buffer object after another thread grew it. */
function refresh(s: ArenaState): void {
  const buffer = s.memory.buffer as unknown as SharedArrayBuffer;
  if (buffer.byteLength !== s.current.byteLength) {
    s.current = buffer;
    s.buffers.push(buffer);
  }
}

/**
 * On a helper thread: makes `memory` (the arena of the thread that started this one) this thread's
 * arena, before anything here allocated from one. This thread never grows or frees it: every block
 * comes from the region [start, start + bytes), which the owning thread reserved for it and keeps,
 * or, inside withArenaRegion, from the region given there.
 */
export function adoptArena(memory: WebAssembly.Memory, start: number, bytes: number): void {
  if (state !== undefined && state !== null) throw new Error("adoptArena: this thread already has an arena");
  const current = memory.buffer as unknown as SharedArrayBuffer;
  state = {
    memory,
    current,
    buffers: [current],
    top: 0,
    clean: 0,
    free: [],
    live: 0,
    regions: { permanent: { next: start, end: start + bytes }, current: null },
  };
}

/** On a helper thread (adoptArena): runs `fn` with its allocations taken from the region
 *  [start, start + bytes) instead (a model replica's, which the owning thread reserved). */
export function withArenaRegion<T>(start: number, bytes: number, fn: () => T): T {
  const regions = state?.regions;
  if (!regions) throw new Error("withArenaRegion: only on a thread that adopted an arena");
  const before = regions.current;
  regions.current = { next: start, end: start + bytes };
  try {
    return fn();
  } finally {
    regions.current = before;
  }
}

/** Bytes of arena blocks `fn` allocates (and keeps or drops: nothing is reclaimed while it runs),
 *  as a helper thread would need for the same allocations. */
export function measureAllocations(fn: () => void): number {
  const s = arena();
  if (!s) return 0;
  const before = s.live;
  fn();
  return s.live - before;
}

/** A Float32Array view of `length` values at byte `address` of the arena (an address another
 *  thread passed), or null when it lies outside the memory. */
export function arenaView(address: number, length: number): Float32Array | null {
  const s = arena();
  if (!s || !Number.isInteger(address) || address <= 0 || address % 4 !== 0) return null;
  refresh(s);
  if (address + 4 * length > s.current.byteLength) return null;
  return new Float32Array(s.current, address, length);
}

/**
 * A zeroed Float32Array of `length` values in the arena, starting on a 64-byte boundary; an
 * ordinary Float32Array when the arena is unavailable or full.
 */
export function allocFloat32(length: number): Float32Array {
  return allocate(length, (buffer, start, n) => new Float32Array(buffer, start, n)) ?? new Float32Array(length);
}

/** allocFloat32 for int32 values (max pooling's argmax). */
export function allocInt32(length: number): Int32Array {
  return allocate(length, (buffer, start, n) => new Int32Array(buffer, start, n)) ?? new Int32Array(length);
}

/** Whether `buffer` is (one of the buffer objects of) the arena's memory. */
function isArenaBuffer(s: ArenaState, buffer: ArrayBufferLike): boolean {
  if (buffer === s.current) return true;
  const buffers = s.buffers;
  for (let i = buffers.length - 2; i >= 0; i--) if (buffers[i] === buffer) return true;
  return false;
}

/** The byte address of a Float32Array view of the arena, or -1 for any other array. */
export function arenaAddress(a: Float32Array | Float64Array): number {
  const s = state;
  if (!s || !(a instanceof Float32Array) || !isArenaBuffer(s, a.buffer)) return -1;
  return a.byteOffset;
}

/** The byte address of an Int32Array view of the arena, or -1 for any other array. */
export function arenaAddressInt32(a: Int32Array): number {
  const s = state;
  if (!s || !isArenaBuffer(s, a.buffer)) return -1;
  return a.byteOffset;
}

/** The arena's memory (created on first use), for instantiating the kernels on it, here or on a
 *  helper thread; null when WebAssembly shared memory is unavailable. */
export function arenaMemory(): WebAssembly.Memory | null {
  return arena()?.memory ?? null;
}

export interface ArenaStats {
  /** Bytes the memory has. */
  capacity: number;
  /** Bytes in blocks handed out and not yet reclaimed. */
  live: number;
  /** Bytes below the top that are free for reuse. */
  free: number;
  /** How many times the memory has grown. */
  growths: number;
}

export function arenaStats(): ArenaStats {
  const s = state;
  if (!s) return { capacity: 0, live: 0, free: 0, growths: 0 };
  return {
    capacity: s.current.byteLength,
    live: s.live,
    free: s.free.reduce((n, b) => n + b.bytes, 0),
    growths: s.buffers.length - 1,
  };
}

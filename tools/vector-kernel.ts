/**
 * The inner loop of similarity search: int8 stored vectors times an int16 query, summed per
 * vector into int32 scores. One copy in WebAssembly SIMD (i32x4.dot_i16x8_s, 16 dimensions
 * per block), one scalar copy in JavaScript for runtimes without SIMD; both compute exactly
 * the same integers.
 *
 * Why a scan and not a graph: at 100k x 384 a scan of int8 codes reads 38 MB per query
 * (about 5 ms here) and costs nothing to build, and the index is rebuilt from the table on
 * every store open. An HNSW graph in JavaScript takes tens of seconds to build at that size.
 *
 * Layout of the scanned memory, all offsets in bytes:
 *   query:  `blocks * 16` int16 values at `queryOffset` (zero padded past the dimensions)
 *   codes:  `count` vectors of `blocks * 16` int8 values each, contiguous from `codesOffset`
 *   scores: `count` int32 results written from `scoresOffset`
 */

/** Dimensions per SIMD block; stored vectors are padded with zeros to a multiple of it. */
export const blockDimensions = 16;

/** The part of the WebAssembly API used here (the project's lib settings carry no DOM types). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export interface ScanKernel {
  readonly simd: boolean;
  readonly memory: WasmMemory;
  /** scores[i] = sum over d of codes[i][d] * query[d], for i in [0, count). */
  scan(queryOffset: number, codesOffset: number, count: number, blocks: number, scoresOffset: number): void;
}

/** WebAssembly pages are 64 KiB. */
export const wasmPageBytes = 65_536;
/** 4 GiB of addressable memory is the wasm32 ceiling. */
export const wasmPagesMax = 65_536;

/** Creates the SIMD kernel when the runtime validates it, else the scalar one (same results). */
export function createScanKernel(options: { preferScalar?: boolean } = {}): ScanKernel {
  const memory = new wasm.Memory({ initial: 1, maximum: wasmPagesMax });
  const module = options.preferScalar ? undefined : simdModule();
  if (module) {
    const instance = new wasm.Instance(module, { env: { memory } });
    const scan = instance.exports['scan'] as (q: number, c: number, n: number, b: number, s: number) => void;
    return {
      simd: true,
      memory,
      scan(queryOffset, codesOffset, count, blocks, scoresOffset) {
        if (count > 0) scan(queryOffset, codesOffset, count, blocks, scoresOffset);
      },
    };
  }
  return { simd: false, memory, scan: (q, c, n, b, s) => scalarScan(memory, q, c, n, b, s) };
}

function scalarScan(memory: WasmMemory, queryOffset: number, codesOffset: number, count: number, blocks: number, scoresOffset: number): void {
  const stride = blocks * blockDimensions;
  const query = new Int16Array(memory.buffer, queryOffset, stride);
  const codes = new Int8Array(memory.buffer, codesOffset, count * stride);
  const scores = new Int32Array(memory.buffer, scoresOffset, count);
  for (let i = 0, base = 0; i < count; i++, base += stride) {
    let sum = 0;
    for (let d = 0; d < stride; d++) sum += codes[base + d]! * query[d]!;
    scores[i] = sum;
  }
}

// ---- the SIMD module, assembled from named opcodes (no toolchain, no opaque blob) ----

const op = {
  block: 0x02, loop: 0x03, end: 0x0b, brIf: 0x0d,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Store: 0x36, i32Eqz: 0x45, i32Add: 0x6a, i32Sub: 0x6b, i32Const: 0x41,
  void: 0x40, simd: 0xfd,
} as const;
/** SIMD sub-opcodes (after the 0xfd prefix), from the WebAssembly SIMD proposal's table. */
const simdOp = {
  v128Load: 0x00, v128Const: 0x0c, i32x4ExtractLane: 0x1b,
  i16x8ExtendLowI8x16S: 0x87, i16x8ExtendHighI8x16S: 0x88,
  i32x4Add: 0xae, i32x4DotI16x8S: 0xba,
} as const;
const valType = { i32: 0x7f, v128: 0x7b } as const;

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function simd(code: number): number[] {
  return [op.simd, ...uleb(code)];
}

/** memarg: alignment exponent then offset. */
function v128Load(offset: number): number[] {
  return [...simd(simdOp.v128Load), 4, ...uleb(offset)];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...uleb(bytes.length), ...bytes];
}

/** True when this runtime runs the SIMD kernel (WebAssembly SIMD validates). */
export function simdSupported(): boolean {
  return simdModule() !== null;
}

/** The compiled SIMD module, once per process; null when the runtime does not validate it. */
let compiledModule: object | null | undefined;

function simdModule(): object | null {
  if (compiledModule === undefined) {
    const bytes = simdModuleBytes();
    compiledModule = wasm.validate(bytes) ? new wasm.Module(bytes) : null;
  }
  return compiledModule;
}

function simdModuleBytes(): Uint8Array {
  // Parameters 0..4, then locals 5..8.
  const [query, codes, count, blocks, scores] = [0, 1, 2, 3, 4];
  const [queryCursor, blocksLeft] = [5, 6];
  const [acc, code] = [7, 8];
  const get = (i: number) => [op.localGet, i];
  const set = (i: number) => [op.localSet, i];
  const addConst = (i: number, n: number) => [...get(i), op.i32Const, ...sleb(n), op.i32Add, ...set(i)];

  const body: number[] = [
    // locals: 2 x i32, 2 x v128
    ...vec([[2, valType.i32], [2, valType.v128]]),
    op.block, op.void,
    ...get(count), op.i32Eqz, op.brIf, 0,
    op.loop, op.void, // one stored vector per iteration
    ...simd(simdOp.v128Const), ...new Array<number>(16).fill(0), ...set(acc),
    ...get(query), ...set(queryCursor),
    ...get(blocks), ...set(blocksLeft),
    op.loop, op.void, // one block of 16 dimensions per iteration
    ...get(codes), ...v128Load(0), ...set(code),
    ...get(acc),
    ...get(code), ...simd(simdOp.i16x8ExtendLowI8x16S),
    ...get(queryCursor), ...v128Load(0),
    ...simd(simdOp.i32x4DotI16x8S), ...simd(simdOp.i32x4Add),
    ...get(code), ...simd(simdOp.i16x8ExtendHighI8x16S),
    ...get(queryCursor), ...v128Load(16),
    ...simd(simdOp.i32x4DotI16x8S), ...simd(simdOp.i32x4Add),
    ...set(acc),
    ...addConst(codes, 16),
    ...addConst(queryCursor, 32),
    ...get(blocksLeft), op.i32Const, 1, op.i32Sub, op.localTee, blocksLeft,
    op.brIf, 0,
    op.end,
    // scores[i] = sum of the four lanes
    ...get(scores),
    ...get(acc), ...simd(simdOp.i32x4ExtractLane), 0,
    ...get(acc), ...simd(simdOp.i32x4ExtractLane), 1, op.i32Add,
    ...get(acc), ...simd(simdOp.i32x4ExtractLane), 2, op.i32Add,
    ...get(acc), ...simd(simdOp.i32x4ExtractLane), 3, op.i32Add,
    op.i32Store, 2, 0,
    ...addConst(scores, 4),
    ...get(count), op.i32Const, 1, op.i32Sub, op.localTee, count,
    op.brIf, 0,
    op.end,
    op.end,
    op.end,
  ];

  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    ...section(1, vec([[0x60, ...vec([[valType.i32], [valType.i32], [valType.i32], [valType.i32], [valType.i32]]), 0]])), // type: (i32 x5) -> ()
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x01, 1, ...uleb(wasmPagesMax)]])), // import memory {min 1, max}
    ...section(3, vec([[0]])), // function 0 has type 0
    ...section(7, vec([[...name('scan'), 0x00, 0]])), // export function 0 as "scan"
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ];
  return new Uint8Array(bytes);
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

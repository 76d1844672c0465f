/**
 * Where one msgpack value ends, found by walking its tokens without decoding anything. Replay
 * uses it to decode a frame's changes in place, inside the segment buffer, and never touch the
 * invocation that follows them (no view, no copy, no decoder state per frame).
 */

/**
 * End (exclusive) of the msgpack value starting at `start`, which must lie within `end`;
 * undefined when the bytes there are not one whole value. Every value takes at least one
 * byte, so the walk is bounded by the bytes, whatever counts the headers claim.
 */
export function msgpackValueEnd(buf: Buffer, start: number, end: number): number | undefined {
  let p = start;
  let pending = 1; // values still to walk
  while (pending > 0) {
    if (p >= end) return undefined;
    const t = buf[p]!;
    pending--;
    if (t < 0x80 || t >= 0xe0) p += 1; // fixints
    else if (t < 0x90) (pending += (t & 0x0f) * 2), (p += 1); // fixmap
    else if (t < 0xa0) (pending += t & 0x0f), (p += 1); // fixarray
    else if (t < 0xc0) p += 1 + (t & 0x1f); // fixstr
    else {
      // Headers with a length or count: make sure the header itself is there first.
      const lengthBytes = t === 0xc4 || t === 0xc7 || t === 0xd9 ? 1
        : t === 0xc5 || t === 0xc8 || t === 0xda || t === 0xdc || t === 0xde ? 2
          : t === 0xc6 || t === 0xc9 || t === 0xdb || t === 0xdd || t === 0xdf ? 4 : 0;
      if (p + 1 + lengthBytes > end) return undefined;
      const n = lengthBytes === 1 ? buf[p + 1]! : lengthBytes === 2 ? buf.readUInt16BE(p + 1) : lengthBytes === 4 ? buf.readUInt32BE(p + 1) : 0;
      switch (t) {
        case 0xc0: case 0xc1: case 0xc2: case 0xc3: p += 1; break; // nil, (never used), false, true
        case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb: p += 1 + lengthBytes + n; break; // bin, str
        case 0xc7: case 0xc8: case 0xc9: p += 2 + lengthBytes + n; break; // ext: length, type, data
        case 0xca: p += 5; break; // float32
        case 0xcb: p += 9; break; // float64
        case 0xcc: case 0xd0: p += 2; break;
        case 0xcd: case 0xd1: p += 3; break;
        case 0xce: case 0xd2: p += 5; break;
        case 0xcf: case 0xd3: p += 9; break;
        case 0xd4: p += 3; break; // fixext 1, 2, 4, 8, 16: type byte + data
        case 0xd5: p += 4; break;
        case 0xd6: p += 6; break;
        case 0xd7: p += 10; break;
        case 0xd8: p += 18; break;
        case 0xdc: case 0xdd: pending += n; p += 1 + lengthBytes; break; // array16/32
        case 0xde: case 0xdf: pending += n * 2; p += 1 + lengthBytes; break; // map16/32
        default: return undefined;
      }
    }
  }
  return p <= end ? p : undefined;
}

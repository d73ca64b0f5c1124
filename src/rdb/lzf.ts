/**
 * LZF decompression (lzf_d.c), for the compressed strings of an RDB saved with
 * `rdbcompression yes`, Redis's default: a key longer than 20 bytes may be stored so.
 * Returns null when the input is not LZF that expands to exactly `length` bytes.
 */
export function lzfDecompress(input: Uint8Array, length: number): Buffer | null {
  const out = Buffer.allocUnsafe(length);
  let i = 0;
  let o = 0;
  while (i < input.length) {
    const ctrl = input[i++]!;
    if (ctrl < 32) {
      // A literal run of ctrl + 1 bytes.
      const n = ctrl + 1;
      if (o + n > length || i + n > input.length) return null;
      out.set(input.subarray(i, i + n), o);
      i += n;
      o += n;
      continue;
    }
    // A back reference: length in the top 3 bits (7: one more byte), offset in 13 bits.
    let n = ctrl >> 5;
    if (n === 7) {
      if (i >= input.length) return null;
      n += input[i++]!;
    }
    if (i >= input.length) return null;
    const from = o - ((ctrl & 0x1f) << 8) - input[i++]! - 1;
    n += 2;
    if (from < 0 || o + n > length) return null;
    // Byte by byte: a reference may overlap the bytes it produces.
    for (let k = 0; k < n; k++) out[o++] = out[from + k]!;
  }
  return o === length ? out : null;
}

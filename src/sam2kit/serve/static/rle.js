// COCO RLE (compressed string counts) -> a row-major Uint8Array mask of height x width.

export function countsFromString(text) {
  const counts = [];
  let position = 0;
  while (position < text.length) {
    let value = 0;
    let shift = 0;
    let more = 1;
    while (more) {
      const c = text.charCodeAt(position) - 48;
      value |= (c & 0x1f) << (5 * shift);
      more = c & 0x20;
      position += 1;
      shift += 1;
      if (!more && (c & 0x10)) value |= -1 << (5 * shift);
    }
    if (counts.length > 2) value += counts[counts.length - 2];
    counts.push(value);
  }
  return counts;
}

export function decodeRle(rle) {
  const [height, width] = rle.size;
  const counts = typeof rle.counts === "string" ? countsFromString(rle.counts) : rle.counts;
  const mask = new Uint8Array(height * width);
  let index = 0;
  let on = 0;
  for (const run of counts) {
    if (on) {
      for (let i = index; i < index + run; i++) {
        const x = Math.floor(i / height); // column-major runs
        mask[(i - x * height) * width + x] = 1;
      }
    }
    index += run;
    on ^= 1;
  }
  return mask;
}

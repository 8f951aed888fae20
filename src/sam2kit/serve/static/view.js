// Drawing: the picture, the masks (filled, with outlines), the prompts, and the timeline.
import { css, objectColor } from "./colors.js";

export function colorOf(objId) {
  return objectColor(objId - 1);
}

export function sizeCanvases(canvases, width, height) {
  for (const canvas of canvases) {
    canvas.width = width;
    canvas.height = height;
  }
}

// Scale the stacked canvases to fit the stage, keeping the aspect ratio.
export function fitStage(stage, canvases, width, height) {
  if (!width || !height) return;
  const scale = Math.min(stage.clientWidth / width, stage.clientHeight / height);
  for (const canvas of canvases) {
    canvas.style.width = `${Math.floor(width * scale)}px`;
    canvas.style.height = `${Math.floor(height * scale)}px`;
  }
}

export function drawPicture(canvas, bitmap) {
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (bitmap) context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
}

// masks: Map objId -> Uint8Array (row-major, canvas size); objects: [{id, hidden}]
export function drawOverlay(canvas, { masks, objects, selected, prompt, dragBox }) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  if (masks && masks.size) {
    const image = context.createImageData(width, height);
    const data = image.data;
    for (const obj of objects) {
      const mask = masks.get(obj.id);
      if (!mask || obj.hidden || mask.length !== width * height) continue;
      const [r, g, b] = colorOf(obj.id);
      const fill = obj.id === selected ? 150 : 110;
      for (let y = 0, i = 0; y < height; y++) {
        for (let x = 0; x < width; x++, i++) {
          if (!mask[i]) continue;
          const edge = x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
            !mask[i - 1] || !mask[i + 1] || !mask[i - width] || !mask[i + width];
          const o = i * 4;
          data[o] = r; data[o + 1] = g; data[o + 2] = b; data[o + 3] = edge ? 255 : fill;
        }
      }
    }
    context.putImageData(image, 0, 0);
  }
  const unit = Math.max(width, height) / 100;
  if (prompt) {
    const color = colorOf(selected);
    if (prompt.box) {
      const [x0, y0, x1, y1] = prompt.box;
      context.setLineDash([unit, unit / 2]);
      context.lineWidth = Math.max(1, unit / 3);
      context.strokeStyle = css(color);
      context.strokeRect(x0, y0, x1 - x0, y1 - y0);
      context.setLineDash([]);
    }
    for (const [x, y, label] of prompt.points) {
      context.beginPath();
      context.arc(x, y, Math.max(3, unit * 0.9), 0, 2 * Math.PI);
      context.fillStyle = label ? "#35d04a" : "#ff4040";
      context.fill();
      context.lineWidth = Math.max(1, unit / 4);
      context.strokeStyle = "#fff";
      context.stroke();
    }
  }
  if (dragBox) {
    const [x0, y0, x1, y1] = dragBox;
    context.lineWidth = Math.max(1, unit / 3);
    context.strokeStyle = "#fff";
    context.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  }
}

export function drawTimeline(canvas, numFrames, maskedFrames, current) {
  const width = canvas.clientWidth || 600;
  canvas.width = width;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, canvas.height);
  if (!numFrames) return;
  const step = width / numFrames;
  context.fillStyle = "#4caf50";
  for (const frame of maskedFrames) context.fillRect(Math.floor(frame * step), 2, Math.max(1, Math.ceil(step)), canvas.height - 4);
  context.strokeStyle = "#fff";
  context.lineWidth = 2;
  context.strokeRect(Math.floor(current * step) + 1, 1, Math.max(2, Math.ceil(step) - 2), canvas.height - 2);
}

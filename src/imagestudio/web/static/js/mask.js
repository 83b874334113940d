// Mask painting over the selected image. The canvas has the image's own pixel size; strokes are drawn
// in a tint for the eye and exported as a black-and-white PNG where white means "repaint this".

const PAINT = "#ff2a6d";
const UNDO_LIMIT = 20;

export class MaskPainter {
  /** canvas: the overlay; image: the <img> it covers; onChange(hasPaint) after each edit. */
  constructor(canvas, image, { onChange } = {}) {
    this.canvas = canvas;
    this.image = image;
    this.context = canvas.getContext("2d", { willReadFrequently: true });
    this.onChange = onChange || (() => {});
    this.tool = "brush";
    this.size = 40; // in screen pixels, so the brush feels the same at any zoom
    this.undoStack = [];
    this.drawing = false;
    this.last = null;
    this.assetId = null;
    this.painted = false;

    canvas.addEventListener("pointerdown", (event) => this.start(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    canvas.addEventListener("pointerup", (event) => this.end(event));
    canvas.addEventListener("pointercancel", (event) => this.end(event));
  }

  /** Starts (or resumes) painting on an asset; a different asset starts from a clean mask. */
  open(asset) {
    if (this.assetId !== asset.id || this.canvas.width !== asset.width || this.canvas.height !== asset.height) {
      this.canvas.width = asset.width;
      this.canvas.height = asset.height;
      this.assetId = asset.id;
      this.undoStack = [];
      this.painted = false;
    }
    this.canvas.hidden = false;
  }

  close() {
    this.canvas.hidden = true;
    this.drawing = false;
  }

  discard() {
    this.close();
    this.clear({ record: false });
    this.assetId = null;
  }

  setTool(tool) {
    this.tool = tool === "eraser" ? "eraser" : "brush";
  }

  setSize(size) {
    this.size = Math.max(1, Number(size) || 1);
  }

  scale() {
    const rect = this.canvas.getBoundingClientRect();
    return rect.width > 0 ? this.canvas.width / rect.width : 1;
  }

  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    const scale = this.scale();
    return { x: (event.clientX - rect.left) * scale, y: (event.clientY - rect.top) * scale };
  }

  start(event) {
    if (event.button !== undefined && event.button !== 0) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.remember();
    this.drawing = true;
    this.last = this.point(event);
    this.stroke(this.last, this.last);
  }

  move(event) {
    if (!this.drawing) return;
    event.preventDefault();
    const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [event];
    for (const item of events.length ? events : [event]) {
      const next = this.point(item);
      this.stroke(this.last, next);
      this.last = next;
    }
  }

  end(event) {
    if (!this.drawing) return;
    this.drawing = false;
    if (this.canvas.hasPointerCapture(event.pointerId)) this.canvas.releasePointerCapture(event.pointerId);
    this.painted = this.hasPaint();
    this.onChange(this.painted);
  }

  stroke(from, to) {
    const context = this.context;
    context.save();
    context.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    context.strokeStyle = PAINT;
    context.fillStyle = PAINT;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.lineWidth = this.size * this.scale();
    context.beginPath();
    if (from.x === to.x && from.y === to.y) {
      // A tap: canvases skip zero-length lines, so paint the brush's dot directly.
      context.arc(from.x, from.y, context.lineWidth / 2, 0, Math.PI * 2);
      context.fill();
    } else {
      context.moveTo(from.x, from.y);
      context.lineTo(to.x, to.y);
      context.stroke();
    }
    context.restore();
  }

  remember() {
    this.undoStack.push(this.context.getImageData(0, 0, this.canvas.width, this.canvas.height));
    if (this.undoStack.length > UNDO_LIMIT) this.undoStack.shift();
  }

  undo() {
    const previous = this.undoStack.pop();
    if (!previous) return false;
    this.context.putImageData(previous, 0, 0);
    this.painted = this.hasPaint();
    this.onChange(this.painted);
    return true;
  }

  clear({ record = true } = {}) {
    if (record) this.remember();
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
    this.onChange(false);
  }

  /** Painted becomes kept and kept becomes painted. */
  invert() {
    this.remember();
    const data = this.context.getImageData(0, 0, this.canvas.width, this.canvas.height);
    const pixels = data.data;
    for (let i = 0; i < pixels.length; i += 4) {
      const alpha = 255 - pixels[i + 3];
      pixels[i] = 255;
      pixels[i + 1] = 42;
      pixels[i + 2] = 109;
      pixels[i + 3] = alpha;
    }
    this.context.putImageData(data, 0, 0);
    this.painted = this.hasPaint();
    this.onChange(this.painted);
  }

  hasPaint() {
    if (!this.canvas.width || !this.canvas.height) return false;
    const pixels = this.context.getImageData(0, 0, this.canvas.width, this.canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
    return false;
  }

  /** The mask as a PNG Blob: white where painted (repaint), black elsewhere (keep); same size as the image. */
  toBlob() {
    const { width, height } = this.canvas;
    const white = document.createElement("canvas");
    white.width = width;
    white.height = height;
    const whiteContext = white.getContext("2d");
    whiteContext.drawImage(this.canvas, 0, 0);
    whiteContext.globalCompositeOperation = "source-in";
    whiteContext.fillStyle = "#ffffff";
    whiteContext.fillRect(0, 0, width, height);

    const output = document.createElement("canvas");
    output.width = width;
    output.height = height;
    const context = output.getContext("2d");
    context.fillStyle = "#000000";
    context.fillRect(0, 0, width, height);
    context.drawImage(white, 0, 0);
    // Anti-aliased stroke edges become grey; a hard threshold keeps the mask strictly two-valued.
    const data = context.getImageData(0, 0, width, height);
    const pixels = data.data;
    for (let i = 0; i < pixels.length; i += 4) {
      const value = pixels[i] >= 128 ? 255 : 0;
      pixels[i] = value;
      pixels[i + 1] = value;
      pixels[i + 2] = value;
      pixels[i + 3] = 255;
    }
    context.putImageData(data, 0, 0);
    return new Promise((resolve, reject) => {
      output.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("The mask could not be encoded."))), "image/png");
    });
  }

  /** A small preview for the composer's chip: the image with the painted area tinted over it. */
  previewUrl(size = 72) {
    const preview = document.createElement("canvas");
    const scale = size / Math.max(this.canvas.width, this.canvas.height);
    preview.width = Math.max(1, Math.round(this.canvas.width * scale));
    preview.height = Math.max(1, Math.round(this.canvas.height * scale));
    const context = preview.getContext("2d");
    if (this.image.complete && this.image.naturalWidth) context.drawImage(this.image, 0, 0, preview.width, preview.height);
    context.globalAlpha = 0.7;
    context.drawImage(this.canvas, 0, 0, preview.width, preview.height);
    return preview.toDataURL("image/png");
  }
}

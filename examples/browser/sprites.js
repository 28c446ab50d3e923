// Draws sprites from the exported generator-rgba8.onnx with onnxruntime-web (WASM), every file from this folder.
// The file's input is z (batch, nz) float32 and its output sprite (batch, size, size, 4) uint8 RGBA, alpha 0 or
// 255, RGB 0 where transparent: ready for ImageData, no arithmetic in the page.
import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.bundle.min.mjs";
import { latents } from "./latent.js";

// the bundle carries its JavaScript glue; only the WebAssembly binary is fetched, from beside it
ort.env.wasm.wasmPaths = {
  wasm: new URL("./node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm", import.meta.url).href,
};
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation headers that a plain static server lacks

const MAX_SEEDS = 256;

// "0-7", "3,17,42" or "5" -> seeds as BigInt (up to 18 digits each, as dcgan-sample takes them).
export function parseSeeds(text) {
  const seeds = [];
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const m = part.match(/^(\d{1,18})(?:-(\d{1,18}))?$/);
    if (!m) throw new Error(`"${part}" is not a seed (0-999999999999999999) or a range like 0-63`);
    const first = BigInt(m[1]);
    const last = m[2] === undefined ? first : BigInt(m[2]);
    if (last < first) throw new Error(`the range ${part} runs backwards`);
    if (last - first >= BigInt(MAX_SEEDS) || seeds.length + Number(last - first) >= MAX_SEEDS) {
      throw new Error(`at most ${MAX_SEEDS} seeds at a time`);
    }
    for (let s = first; s <= last; s++) seeds.push(s);
  }
  if (!seeds.length) throw new Error("no seeds given");
  return seeds;
}

export async function openGenerator(url = "generator-rgba8.onnx") {
  const session = await ort.InferenceSession.create(url, { executionProviders: ["wasm"] });
  const [input] = session.inputMetadata;
  const [output] = session.outputMetadata;
  if (!input?.isTensor || input.type !== "float32" || output?.type !== "uint8") {
    throw new Error(`${url} is not an rgba8 generator (z float32 in, sprite uint8 out)`);
  }
  const nz = input.shape[1];
  const size = output.shape[1];
  return {
    nz,
    size,
    // seeds -> one Uint8ClampedArray of size*size*4 RGBA bytes per seed
    async draw(seeds) {
      const z = new ort.Tensor("float32", latents(seeds, nz), [seeds.length, nz]);
      const result = await session.run({ [session.inputNames[0]]: z });
      const bytes = result[session.outputNames[0]].data;
      const per = size * size * 4;
      return seeds.map((_, i) => new Uint8ClampedArray(bytes.buffer, bytes.byteOffset + i * per, per));
    },
  };
}

// Sprites in rows of `columns` on the canvas, each at its own size (scale with CSS, which keeps pixels crisp).
export function paint(canvas, sprites, size, columns = 8) {
  canvas.width = Math.min(columns, sprites.length) * size;
  canvas.height = Math.ceil(sprites.length / columns) * size;
  const ctx = canvas.getContext("2d");
  sprites.forEach((rgba, i) => {
    ctx.putImageData(new ImageData(rgba, size, size), (i % columns) * size, Math.floor(i / columns) * size);
  });
}

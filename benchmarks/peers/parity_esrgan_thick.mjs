// Run UpscalerJS ESRGAN-thick exactly as shipped (TF.js layers model + the package's own custom
// layers) on raw float32 NHWC inputs, and write the raw float32 NHWC outputs.
//
// Why: our PyTorch port (src/facesr/nets/peers.py) is only a fair stand-in for the peer if it
// computes the same function. benchmarks/peers/parity_esrgan_thick.py feeds the same faces to both
// and reports the max abs difference. This is a one-off check, not a CI test (CI has no npm).
//
// Usage:
//   node parity_esrgan_thick.mjs --package DIR --scale 4|8 --input in.f32 --shape N,H,W,3 \
//        --output out.f32 [--tfjs DIR_WITH_node_modules] [--backend wasm|cpu]
// DIR is the unpacked npm tarball (`package/`). Inputs are RGB in [0, 1] (the model's inputRange).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

function parseArgs(argv) {
  const out = { tfjs: process.cwd(), backend: 'wasm' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (argv[i + 1] === undefined) throw new Error(`missing value for --${key}`);
    out[key] = argv[i + 1];
  }
  for (const req of ['package', 'scale', 'input', 'shape', 'output']) {
    if (!(req in out)) throw new Error(`missing --${req}`);
  }
  return out;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const require = createRequire(path.join(path.resolve(args.tfjs), 'package.json'));
  const tf = require('@tensorflow/tfjs');
  if (args.backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend(args.backend);
  await tf.ready();

  const pkg = path.resolve(args.package);
  const scale = Number(args.scale);
  // The package's own model definition registers its custom layers (MultiplyBeta, PixelShuffleNx).
  const definition = require(path.join(pkg, `dist/cjs/models/esrgan-thick/src/x${scale}/cjs.js`));
  definition.setup(tf);
  const modelDir = path.join(pkg, `models/x${scale}`);
  const modelJson = JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8'));
  const specs = [];
  const buffers = [];
  for (const group of modelJson.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(modelDir, p)));
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: specs, weightData }));

  const shape = args.shape.split(',').map(Number);
  const raw = fs.readFileSync(args.input);
  const input = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const [n, h, w, c] = shape;
  if (input.length !== n * h * w * c) throw new Error(`input has ${input.length} floats, shape says ${shape}`);
  const chunks = [];
  const times = [];
  for (let i = 0; i < n; i++) {  // one face per call, as UpscalerJS would run it
    const x = tf.tensor4d(input.subarray(i * h * w * c, (i + 1) * h * w * c), [1, h, w, c]);
    const t0 = process.hrtime.bigint();
    const y = model.predict(x);
    const data = await y.data();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    tf.dispose([x, y]);
  }
  fs.writeFileSync(args.output, Buffer.concat(chunks));
  const sorted = [...times].sort((a, b) => a - b);
  console.log(JSON.stringify({
    backend: tf.getBackend(), tfjs: tf.version.tfjs, scale, faces: n,
    inputRange: definition.inputRange, outputRange: definition.outputRange,
    median_ms_per_face: sorted[Math.floor(sorted.length / 2)],
  }));
}

main().catch((err) => { console.error(`parity_esrgan_thick: error: ${err.message}`); process.exit(2); });

// One image through the official @google/genai SDK, for the client-cost row.
// usage: node sdk_fetch.mjs NODE_MODULES_DIR BASE_URL MODEL SIZE PROMPT OUT
// The key comes from GEMINI_API_KEY, as the SDK reads it.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const [nm, baseUrl, model, size, prompt, out] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nm), 'x.js'));
const { GoogleGenAI } = await import(require.resolve('@google/genai'));

const ai = new GoogleGenAI({ apiKey: process.env.GEMINI_API_KEY, httpOptions: { baseUrl } });
const it = await ai.interactions.create({
  model,
  input: [{ type: 'text', text: prompt }],
  response_format: { type: 'image', aspect_ratio: '1:1', image_size: size },
  store: false,
});
const img = it.output_image;
if (!img || !img.data) {
  console.error('no image in the answer');
  process.exit(1);
}
writeFileSync(out, Buffer.from(img.data, 'base64'));

// Points the official @google/genai and openai clients at bananafs-emulator
// and checks that they understand its answers.
// usage: node conformance.mjs http://127.0.0.1:PORT [KEY]
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';

const base = process.argv[2];
const key = process.argv[3] || 'emulator-key';
if (!base) {
  console.error('usage: node conformance.mjs BASEURL [KEY]');
  process.exit(2);
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

function pngSize(b64) {
  const b = Buffer.from(b64, 'base64');
  if (b.subarray(1, 4).toString() !== 'PNG') return null;
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

async function main() {
  const ai = new GoogleGenAI({
    apiKey: key,
    httpOptions: { baseUrl: base, apiVersion: 'v1beta' },
  });

  // Interactions API through the SDK's interactions client
  const ia = await ai.interactions.create({
    model: 'gemini-3.1-flash-image',
    input: 'conformance: a lighthouse at dusk',
    response_format: { type: 'image', aspect_ratio: '16:9', image_size: '512' },
  });
  check(ia.status === 'completed', 'interactions.create status completed');
  const mo = (ia.steps || []).filter((s) => s.type === 'model_output');
  const img = mo.flatMap((s) => s.content || []).filter((c) => c.type === 'image').pop();
  check(img && img.mime_type === 'image/png', 'interactions image block');
  const sz = pngSize(img.data);
  check(sz && sz[0] === 688 && sz[1] === 384, `interactions PNG 688x384 (got ${sz})`);
  check(ia.usage && ia.usage.total_output_tokens >= 747, 'interactions usage');

  // generateContent with image config
  const gc = await ai.models.generateContent({
    model: 'gemini-3-pro-image',
    contents: 'conformance: a red bicycle',
    config: {
      responseModalities: ['TEXT', 'IMAGE'],
      imageConfig: { aspectRatio: '3:2', imageSize: '1K' },
    },
  });
  const parts = gc.candidates[0].content.parts;
  const inl = parts.filter((p) => p.inlineData).pop();
  check(inl && inl.inlineData.mimeType === 'image/png', 'generateContent inlineData');
  const gsz = pngSize(inl.inlineData.data);
  check(gsz && gsz[0] === 1264 && gsz[1] === 848, `generateContent PNG 1264x848 (got ${gsz})`);
  check(gc.candidates[0].finishReason === 'STOP', 'generateContent finishReason');
  check(gc.usageMetadata.candidatesTokenCount >= 1120, 'generateContent usageMetadata');

  // Batch with inline requests, polled until done
  let job = await ai.batches.create({
    model: 'gemini-3.1-flash-image',
    src: [
      {
        contents: [{ role: 'user', parts: [{ text: 'conformance batch one' }] }],
        config: { responseModalities: ['IMAGE'], imageConfig: { aspectRatio: '1:1', imageSize: '512' } },
      },
      {
        contents: [{ role: 'user', parts: [{ text: 'conformance batch two' }] }],
        config: { responseModalities: ['IMAGE'], imageConfig: { aspectRatio: '1:1', imageSize: '512' } },
      },
    ],
    config: { displayName: 'conformance' },
  });
  check(job.name && job.name.startsWith('batches/'), 'batches.create name');
  const deadline = Date.now() + 30000;
  while (!['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'].includes(job.state)) {
    if (Date.now() > deadline) throw new Error(`batch stuck in ${job.state}`);
    await new Promise((r) => setTimeout(r, 300));
    job = await ai.batches.get({ name: job.name });
  }
  check(job.state === 'JOB_STATE_SUCCEEDED', 'batch succeeded');
  const inlined = job.dest && job.dest.inlinedResponses;
  check(inlined && inlined.length === 2, 'batch has 2 inlined responses');
  for (const r of inlined) {
    const p = r.response.candidates[0].content.parts.filter((x) => x.inlineData).pop();
    const s = pngSize(p.inlineData.data);
    check(s && s[0] === 512 && s[1] === 512, 'batch image 512x512');
  }

  // OpenAI-compatible gateway
  const oai = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
  const gen = await oai.images.generate({
    model: 'gemini-3.1-flash-image',
    prompt: 'conformance: a teapot',
    n: 1,
    size: '1024x1024',
    response_format: 'b64_json',
  });
  check(gen.data.length === 1 && gen.data[0].b64_json, 'openai images.generate b64_json');
  const osz = pngSize(gen.data[0].b64_json);
  check(osz && osz[0] === 1024 && osz[1] === 1024, `openai PNG 1024x1024 (got ${osz})`);
  check(gen.usage && gen.usage.output_tokens > 0, 'openai usage');

  // Errors must surface as SDK errors, not crashes
  let threw = false;
  try {
    await oai.images.generate({ model: 'no-such-model', prompt: 'x' });
  } catch (e) {
    threw = e.status === 404;
  }
  check(threw, 'openai unknown model -> 404 APIError');
}

main().then(
  () => console.log('conformance: all checks passed'),
  (e) => {
    console.error('conformance: FAILED:', e && e.stack ? e.stack : e);
    process.exit(1);
  },
);

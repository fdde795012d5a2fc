// Upload to ready at a fixed arrival rate (constant-arrival-rate): each iteration is one
// photo's whole path as a client takes it: createUpload, the presigned multipart POST
// straight to the object store, finalizeUpload, then media(id) polled until READY.
//
// Driven by bench/media.py; every knob comes from -e VAR=value:
//   TARGET    base URL of an `aperture serve` process (http://127.0.0.1:PORT)
//   DATA      JSON file {"tokens": [...]}: bearer tokens of the uploaders
//   PHOTO     path of the JPEG every iteration uploads
//   RATE      uploads per second; DURATION seconds; PRE_VUS / MAX_VUS as in common.js
//   POLL_MS   milliseconds between polls of media(id) (default 50)
//   SUMMARY   where handleSummary writes the end-of-test JSON
//
// latency_ready: from createUpload sent to READY seen; latency_processing: from
// finalizeUpload sent to READY seen; latency_storage: the POST to the object store.
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

import { fixedRateOptions, viewerTokens } from './common.js';

export { handleSummary } from './common.js';

const URL = `${__ENV.TARGET}/graphql`;
const POLL_S = parseInt(__ENV.POLL_MS || '50', 10) / 1000;
const PHOTO = open(__ENV.PHOTO, 'b');
const tokens = viewerTokens();

export const options = fixedRateOptions('upload');

const CREATE =
  'mutation($input: CreateUploadInput!) { createUpload(input: $input) { upload { ' +
  'url method fields { name value } media { id } } } }';
const FINALIZE = 'mutation($id: ID!) { finalizeUpload(mediaId: $id) { media { status } } }';
const STATUS = 'query($id: ID!) { media(id: $id) { status error { code } } }';

const failed = new Rate('failed_requests');
const ready = new Trend('latency_ready', true);
const processing = new Trend('latency_processing', true);
const storage = new Trend('latency_storage', true);
const polls = new Counter('status_polls');
let reported = 0;

function report(stage, detail) {
  failed.add(true);
  if (reported < 3) {
    reported += 1;
    console.error(`FAILED upload at ${stage}: ${detail}`);
  }
}

function graphql(token, query, variables) {
  const response = http.post(URL, JSON.stringify({ query, variables }), {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    timeout: '10s',
    tags: { name: 'graphql' },
  });
  if (response.status !== 200) return [null, `status ${response.status} ${response.body}`];
  const body = response.json();
  if (body.errors) return [null, JSON.stringify(body.errors).slice(0, 300)];
  return [body.data, null];
}

export default function () {
  const token = tokens[Math.floor(Math.random() * tokens.length)];
  const started = Date.now();
  const [created, createError] = graphql(token, CREATE, {
    input: { kind: 'IMAGE', contentType: 'image/jpeg', byteSize: PHOTO.byteLength },
  });
  if (created === null) return report('createUpload', createError);
  const upload = created.createUpload.upload;
  const form = {};
  for (const field of upload.fields) form[field.name] = field.value;
  form.file = http.file(PHOTO, 'photo.jpg', 'image/jpeg');
  const sent = http.post(upload.url, form, { timeout: '30s', tags: { name: 'storage' } });
  if (sent.status < 200 || sent.status >= 300) {
    return report('storage', `status ${sent.status} ${String(sent.body).slice(0, 300)}`);
  }
  storage.add(sent.timings.duration);
  const finalizing = Date.now();
  const id = upload.media.id;
  const [, finalizeError] = graphql(token, FINALIZE, { id });
  if (finalizeError !== null) return report('finalizeUpload', finalizeError);
  const deadline = finalizing + 60000;
  for (;;) {
    const [seen, statusError] = graphql(token, STATUS, { id });
    polls.add(1);
    if (seen === null) return report('media', statusError);
    const status = seen.media.status;
    if (status === 'READY') break;
    if (status === 'FAILED') return report('processing', JSON.stringify(seen.media.error));
    if (Date.now() > deadline) return report('processing', 'not READY within 60 s');
    sleep(POLL_S);
  }
  const now = Date.now();
  failed.add(false);
  ready.add(now - started);
  processing.add(now - finalizing);
}

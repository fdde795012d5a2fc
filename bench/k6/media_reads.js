// The media benchmark's reads at a fixed arrival rate (constant-arrival-rate), one kind
// per run: the warm home feed without and with its media fields, and the stories tray.
//
// Driven by bench/media.py; every knob comes from -e VAR=value:
//   TARGET    base URL of an `aperture serve` process (http://127.0.0.1:PORT)
//   KIND      feed | feed_media | tray: what the answer is checked for
//   QUERY     the document (bench/media.py READ_QUERIES)
//   DATA      JSON file {"tokens": [...]}: bearer tokens of the viewers, picked uniformly
//   RATE      requests per second; DURATION seconds; PRE_VUS / MAX_VUS as in common.js
//   TIMEOUT   per-request timeout ("5s")
//   SUMMARY   where handleSummary writes the end-of-test JSON
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Rate, Trend } from 'k6/metrics';

import { fixedRateOptions } from './common.js';

const KIND = __ENV.KIND || 'feed';
const URL = `${__ENV.TARGET}/graphql`;
const TIMEOUT = __ENV.TIMEOUT || '5s';

if (!['feed', 'feed_media', 'tray'].includes(KIND)) {
  throw new Error(`KIND must be feed, feed_media or tray, not ${KIND}`);
}
if (!__ENV.QUERY) {
  throw new Error('QUERY (the document of this kind, from bench/media.py) is missing');
}
// Each answer must hold what was asked for: a feed page of posts, a tray of accounts.
const EXPECTED = { feed: /"node":\{"id"/, feed_media: /"media":\[/, tray: /"storyCount":[1-9]/ };

const tokens = new SharedArray('tokens', () => JSON.parse(open(__ENV.DATA)).tokens);
const BODY = JSON.stringify({ query: __ENV.QUERY });

export const options = fixedRateOptions(KIND);

const failed = new Rate('failed_requests');
const latency = new Trend('latency_all', true);
const ERRORS = /"errors"\s*:/;
let reported = 0;

export default function () {
  const token = tokens[Math.floor(Math.random() * tokens.length)];
  const response = http.post(URL, BODY, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    timeout: TIMEOUT,
    tags: { name: KIND },
  });
  const text = typeof response.body === 'string' ? response.body : '';
  const bad =
    response.status !== 200 || text === '' || ERRORS.test(text) || !EXPECTED[KIND].test(text);
  failed.add(bad);
  latency.add(response.timings.duration);
  if (bad && reported < 3) {
    reported += 1;
    console.error(
      `FAILED ${KIND} status=${response.status} error=${response.error} body=${text.slice(0, 400)}`,
    );
  }
}

export function handleSummary(summary) {
  return { [__ENV.SUMMARY]: JSON.stringify(summary) };
}

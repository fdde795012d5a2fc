// Home-feed reads at a fixed arrival rate (open model: constant-arrival-rate, so a slow
// response never delays the next request and latency is free of coordinated omission).
//
// Driven by bench/feed.py; every knob comes from -e VAR=value:
//   TARGET    base URL of an `aperture serve` process (http://127.0.0.1:PORT)
//   DATA      JSON file {"tokens": [...]}: bearer tokens of the viewers, picked uniformly
//   RATE      requests per second; DURATION seconds
//   PRE_VUS / MAX_VUS  virtual users pre-allocated / at most (an iteration with no free
//             VU is dropped and counted in dropped_iterations)
//   TIMEOUT   per-request timeout ("5s")
//   SUMMARY   where handleSummary writes the end-of-test JSON
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Rate, Trend } from 'k6/metrics';

import { fixedRateOptions } from './common.js';

const tokens = new SharedArray('tokens', () => JSON.parse(open(__ENV.DATA)).tokens);
const URL = `${__ENV.TARGET}/graphql`;
const TIMEOUT = __ENV.TIMEOUT || '5s';

export const options = fixedRateOptions('feed');

const BODY = JSON.stringify({
  query:
    'query { homeFeed(first: 20) { edges { node { id caption author { username } ' +
    'likeCount commentCount viewerHasLiked } } } }',
});

// A request failed: transport error or timeout, a status other than 200, or a GraphQL
// answer with errors (GraphQL sends errors whenever data is null).
const failed = new Rate('failed_requests');
const latency = new Trend('latency_feed', true);
const ERRORS = /"errors"\s*:/;
let reported = 0;

export default function () {
  const token = tokens[Math.floor(Math.random() * tokens.length)];
  const response = http.post(URL, BODY, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    timeout: TIMEOUT,
    tags: { name: 'homeFeed' },
  });
  const body = typeof response.body === 'string' ? response.body : '';
  const bad =
    response.status !== 200 || body === '' || ERRORS.test(body);
  failed.add(bad);
  latency.add(response.timings.duration);
  if (bad && reported < 3) {
    reported += 1;
    console.error(`FAILED homeFeed status=${response.status} error=${response.error} body=${body.slice(0, 400)}`);
  }
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}

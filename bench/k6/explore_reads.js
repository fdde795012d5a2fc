// Explore serving (issue 12) at a fixed arrival rate (constant-arrival-rate), one kind per
// run: `explore(first: 24)` and, as the baseline in the same server and the same run, the
// warm `homeFeed(first: 20)` of bench/read_path.py, with the same post fields.
//
// Driven by bench/explore_serving.py; every knob comes from -e VAR=value:
//   TARGET    base URL of an `aperture serve` process (http://127.0.0.1:PORT)
//   KIND      feed | explore (see QUERIES)
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

const FIELDS = 'id caption author { username } likeCount commentCount viewerHasLiked';
const FEED = `query { homeFeed(first: 20) { edges { node { ${FIELDS} } } } }`;
const EXPLORE = `query { explore(first: 24) { edges { cursor node { ${FIELDS} } } } }`;
const QUERIES = { feed: FEED, explore: EXPLORE };
if (!(KIND in QUERIES)) {
  throw new Error(`KIND must be one of ${Object.keys(QUERIES).join(', ')}, not ${KIND}`);
}
// Each answer must hold at least one post.
const EXPECTED = /"node":\{"id"/;

const tokens = new SharedArray('tokens', () => JSON.parse(open(__ENV.DATA)).tokens);
const BODY = JSON.stringify({ query: QUERIES[KIND] });

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
  const bad = response.status !== 200 || text === '' || ERRORS.test(text) || !EXPECTED.test(text);
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

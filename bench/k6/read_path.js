// The read path's three reads at a fixed arrival rate (open model: constant-arrival-rate,
// so a slow response never delays the next request), one kind per run.
//
// Driven by bench/read_path.py; every knob comes from -e VAR=value:
//   TARGET    base URL of an `aperture serve` process (http://127.0.0.1:PORT)
//   KIND      feed: homeFeed(first: 20) | grid: user(username:) { posts(first: 12) }
//             | detail: node(id:) on a Post; it names the scenario
//   DATA      JSON file {"tokens": [...], "usernames": [...], "post_ids": [...]}: bearer
//             tokens of the viewers, public users, visible posts; each picked uniformly
//   RATE      requests per second; DURATION seconds
//   PRE_VUS / MAX_VUS  virtual users pre-allocated / at most (an iteration with no free
//             VU is dropped and counted in dropped_iterations); each VU keeps its own
//             keep-alive connection, so PRE_VUS=1000 means up to 1000 connections
//   TIMEOUT   per-request timeout ("5s")
//   SUMMARY   where handleSummary writes the end-of-test JSON
//
// setup() and teardown() log READ_PATH_START / READ_PATH_END: the benchmark reads the
// server's CPU when it sees them, so the VUs' start-up is not in the CPU per request.
import { SharedArray } from 'k6/data';
import { Counter, Rate, Trend } from 'k6/metrics';

import { failure, fixedRateOptions, pick, post, reportFailure } from './common.js';

export { handleSummary } from './common.js';

const KIND = __ENV.KIND || 'feed';

const QUERIES = {
  feed:
    'query { homeFeed(first: 20) { edges { node { id caption author { username } ' +
    'likeCount commentCount viewerHasLiked } } } }',
  grid:
    'query($u: String!) { user(username: $u) { posts(first: 12) { edges { node { id ' +
    'caption likeCount commentCount viewerHasLiked } } } } }',
  detail:
    'query($id: ID!) { node(id: $id) { ... on Post { id caption createdAt likeCount ' +
    'commentCount viewerHasLiked author { username } } } }',
};
if (!(KIND in QUERIES)) {
  throw new Error(`KIND must be one of ${Object.keys(QUERIES).join(', ')}, not ${KIND}`);
}

const data = new SharedArray('data', () => {
  const parsed = JSON.parse(open(__ENV.DATA));
  return [parsed.tokens, parsed.usernames || [], parsed.post_ids || []];
});
const tokens = data[0];
const usernames = data[1];
const postIds = data[2];

export const options = fixedRateOptions(KIND);

const FEED_BODY = JSON.stringify({ query: QUERIES.feed });

function body() {
  if (KIND === 'grid') {
    return JSON.stringify({ query: QUERIES.grid, variables: { u: pick(usernames) } });
  }
  if (KIND === 'detail') {
    return JSON.stringify({ query: QUERIES.detail, variables: { id: pick(postIds) } });
  }
  return FEED_BODY;
}

// A request failed: transport error or timeout (status 0), a status other than 200, or a
// GraphQL answer with errors (GraphQL sends errors whenever data is null), or for the
// grid a null user (the username must exist).
const failed = new Rate('failed_requests');
const latency = new Trend('latency_all', true);
const errors = {
  transport: new Counter('errors_transport'),
  status: new Counter('errors_status'),
  graphql: new Counter('errors_graphql'),
};
const USER = /"user"\s*:\s*\{/;

export function setup() {
  if (KIND === 'grid' && usernames.length === 0) throw new Error('no usernames in DATA');
  if (KIND === 'detail' && postIds.length === 0) throw new Error('no post_ids in DATA');
  console.log(`READ_PATH_START ${Date.now()}`);
}

export default function () {
  const response = post(body(), pick(tokens), KIND);
  const cause = failure(response, KIND === 'grid' ? USER : null);
  if (cause) {
    errors[cause].add(1);
    reportFailure(KIND, response);
  }
  failed.add(cause !== '');
  latency.add(response.timings.duration);
}

export function teardown() {
  console.log(`READ_PATH_END ${Date.now()}`);
}

// The DeathStarBench social-network mix at a fixed arrival rate (constant-arrival-rate):
// 60% homeFeed(first: 10) of a random viewer, 30% the post timeline of a random user,
// 10% createPost by a random viewer; all choices uniform.
//
// Driven by bench/feed.py; the knobs are common.js's, and DATA holds
// {"tokens": [...], "usernames": [...]}.
import { SharedArray } from 'k6/data';
import { Rate, Trend } from 'k6/metrics';

import { failure, fixedRateOptions, pick, post, reportFailure, viewerTokens } from './common.js';

export { handleSummary } from './common.js';

const tokens = viewerTokens();
const usernames = new SharedArray('usernames', () => JSON.parse(open(__ENV.DATA)).usernames);

export const options = fixedRateOptions('mix');

const FEED = JSON.stringify({
  query:
    'query { homeFeed(first: 10) { edges { node { id caption author { username } ' +
    'likeCount commentCount viewerHasLiked } } } }',
});
const TIMELINE =
  'query($u: String!) { user(username: $u) { posts(first: 10) { edges { node { id caption ' +
  'likeCount } } } } }';
const CREATE_POST =
  'mutation($c: String!) { createPost(input: {caption: $c}) { post { id } } }';

const failed = new Rate('failed_requests');
const latencyAll = new Trend('latency_all', true);
const latencyByKind = {
  feed: new Trend('latency_feed', true),
  timeline: new Trend('latency_timeline', true),
  post: new Trend('latency_post', true),
};
const failedByKind = {
  feed: new Rate('failed_feed'),
  timeline: new Rate('failed_timeline'),
  post: new Rate('failed_post'),
};

export default function () {
  const token = pick(tokens);
  const roll = Math.random();
  let kind;
  let body;
  if (roll < 0.6) {
    kind = 'feed';
    body = FEED;
  } else if (roll < 0.9) {
    kind = 'timeline';
    body = JSON.stringify({ query: TIMELINE, variables: { u: pick(usernames) } });
  } else {
    kind = 'post';
    body = JSON.stringify({
      query: CREATE_POST,
      variables: { c: `k6 post ${__VU}-${__ITER} #bench` },
    });
  }
  const response = post(body, token, kind);
  const bad = failure(response, null) !== '';
  failed.add(bad);
  failedByKind[kind].add(bad);
  latencyAll.add(response.timings.duration);
  latencyByKind[kind].add(response.timings.duration);
  if (bad) reportFailure(kind, response);
}

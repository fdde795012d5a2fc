// The DeathStarBench social-network mix at a fixed arrival rate (constant-arrival-rate):
// 60% homeFeed(first: 10) of a random viewer, 30% the post timeline of a random user,
// 10% createPost by a random viewer; all choices uniform.
//
// Driven by bench/feed.py; knobs as in feed_reads.js, and DATA holds
// {"tokens": [...], "usernames": [...]}.
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Rate, Trend } from 'k6/metrics';

import { fixedRateOptions } from './common.js';

const tokens = new SharedArray('tokens', () => JSON.parse(open(__ENV.DATA)).tokens);
const usernames = new SharedArray('usernames', () => JSON.parse(open(__ENV.DATA)).usernames);
const URL = `${__ENV.TARGET}/graphql`;
const TIMEOUT = __ENV.TIMEOUT || '5s';

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
const ERRORS = /"errors"\s*:/;
let reported = 0;

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

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
  const response = http.post(URL, body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    timeout: TIMEOUT,
    tags: { name: kind },
  });
  const text = typeof response.body === 'string' ? response.body : '';
  const bad =
    response.status !== 200 || text === '' || ERRORS.test(text);
  failed.add(bad);
  failedByKind[kind].add(bad);
  latencyAll.add(response.timings.duration);
  latencyByKind[kind].add(response.timings.duration);
  if (bad && reported < 3) {
    reported += 1;
    console.error(`FAILED ${kind} status=${response.status} error=${response.error} body=${text.slice(0, 400)}`);
  }
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}

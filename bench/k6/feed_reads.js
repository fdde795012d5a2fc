// Home-feed reads at a fixed arrival rate (open model: constant-arrival-rate, so a slow
// response never delays the next request and latency is free of coordinated omission).
//
// Driven by bench/feed.py (and bench/edge.py, bench/layering.py); the knobs are
// common.js's, DATA holds {"tokens": [...]}. A request failed on a transport error or
// timeout, a status other than 200, or a GraphQL answer with errors.
import { documentReads, fixedRateOptions } from './common.js';

export { handleSummary } from './common.js';

export const options = fixedRateOptions('feed');

const BODY = JSON.stringify({
  query:
    'query { homeFeed(first: 20) { edges { node { id caption author { username } ' +
    'likeCount commentCount viewerHasLiked } } } }',
});

export default documentReads({ body: BODY, name: 'homeFeed', latency: 'latency_feed' });

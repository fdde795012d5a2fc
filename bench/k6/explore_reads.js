// Explore serving (issue 12) at a fixed arrival rate (constant-arrival-rate), one kind per
// run: `explore(first: 24)` and, as the baseline in the same server and the same run, the
// warm `homeFeed(first: 20)` of bench/read_path.py, with the same post fields.
//
// Driven by bench/explore_serving.py; the knobs are common.js's, and
//   KIND      feed | explore (see QUERIES)
import { documentReads, fixedRateOptions } from './common.js';

export { handleSummary } from './common.js';

const KIND = __ENV.KIND || 'feed';

const FIELDS = 'id caption author { username } likeCount commentCount viewerHasLiked';
const FEED = `query { homeFeed(first: 20) { edges { node { ${FIELDS} } } } }`;
const EXPLORE = `query { explore(first: 24) { edges { cursor node { ${FIELDS} } } } }`;
const QUERIES = { feed: FEED, explore: EXPLORE };
if (!(KIND in QUERIES)) {
  throw new Error(`KIND must be one of ${Object.keys(QUERIES).join(', ')}, not ${KIND}`);
}
// Each answer must hold at least one post.
const EXPECTED = /"node":\{"id"/;

export const options = fixedRateOptions(KIND);

export default documentReads({
  body: JSON.stringify({ query: QUERIES[KIND] }),
  name: KIND,
  expected: EXPECTED,
});

// The media benchmark's reads at a fixed arrival rate (constant-arrival-rate), one kind
// per run: the warm home feed without and with its media fields, and the stories tray.
//
// Driven by bench/media.py; the knobs are common.js's, and
//   KIND      feed | feed_media | tray: what the answer is checked for
//   QUERY     the document (bench/media.py READ_QUERIES)
import { documentReads, fixedRateOptions } from './common.js';

export { handleSummary } from './common.js';

const KIND = __ENV.KIND || 'feed';

if (!['feed', 'feed_media', 'tray'].includes(KIND)) {
  throw new Error(`KIND must be feed, feed_media or tray, not ${KIND}`);
}
if (!__ENV.QUERY) {
  throw new Error('QUERY (the document of this kind, from bench/media.py) is missing');
}
// Each answer must hold what was asked for: a feed page of posts, a tray of accounts.
const EXPECTED = { feed: /"node":\{"id"/, feed_media: /"media":\[/, tray: /"storyCount":[1-9]/ };

export const options = fixedRateOptions(KIND);

export default documentReads({
  body: JSON.stringify({ query: __ENV.QUERY }),
  name: KIND,
  expected: EXPECTED[KIND],
});

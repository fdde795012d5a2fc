// Many idle subscribed sockets on one server process (bench/realtime.py, part
// "connections"). Every socket authenticates with its own user's token and subscribes
// to messageEvents and notificationEvents; the sockets are opened at RATE per second in
// all at most, PER_VU per VU (the event-loop websockets module holds many per VU), each
// VU waiting for one socket's connection_ack before it opens the next, and held
// until CONTROL answers "stop" (the benchmark measures the server meanwhile) or
// HOLD_MAX seconds passed. Then each VU counts its sockets still open, closes them and
// ends.
//
// -e knobs: TARGET (the server holding the sockets), DATA ({"tokens": [...]}: one socket
// per token), PER_VU, RATE (sockets opened per second), CONTROL (URL answering "hold" or
// "stop"), HOLD_MAX (seconds), SUMMARY (the end-of-test JSON).
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

import {
  MESSAGE_EVENTS,
  NOTIFICATION_EVENTS,
  TREND_STATS,
  allClosed,
  closeLive,
  openLive,
  printFailure,
  sleep,
  within,
  wsUrl,
} from './realtime_common.js';

import { viewerTokens } from './common.js';

export { handleSummary } from './common.js';

const tokens = viewerTokens();
const PER_VU = parseInt(__ENV.PER_VU || '100', 10);
const RATE = parseFloat(__ENV.RATE || '200');
const HOLD_MAX = parseInt(__ENV.HOLD_MAX || '300', 10);
const HANDSHAKE_MS = 60000;
const VUS = Math.ceil(tokens.length / PER_VU);
const URL = wsUrl(__ENV.TARGET);

export const options = {
  summaryTrendStats: TREND_STATS,
  scenarios: {
    sockets: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(tokens.length / RATE) + HOLD_MAX + 60}s`,
    },
  },
};

const opened = new Counter('sockets_opened');
const acked = new Counter('sockets_acked');
const openAtEnd = new Counter('sockets_open_at_end');
const closedEarly = new Counter('sockets_closed_early');
const failures = new Counter('socket_failures');
const messageEvents = new Counter('events_message');
const notificationEvents = new Counter('events_notification');
const ackTime = new Trend('ack_ms', true);
// From connection_ack (when the subscribes go out) to messageEvents' first event, the GAP
// that says the socket is live: nothing sent after it is missed.
const liveSockets = new Counter('live');
const liveTime = new Trend('live_ms', true);
function fail(live, message) {
  failures.add(1);
  printFailure(`socket: ${message}`);
}

export default async function () {
  const vu = exec.scenario.iterationInTest;
  const started = Date.now();
  const lives = [];
  const handlers = {
    ack: (live) => {
      acked.add(1);
      ackTime.add(live.ackMs);
    },
    event: (live, id, payload) => {
      const event = payload.messageEvents || payload.notificationEvents || {};
      if (event.kind === 'GAP') {
        if (id === '1' && !live.wasLive) {
          live.wasLive = true;
          liveSockets.add(1);
          liveTime.add(Date.now() - live.createdAt - live.ackMs);
        }
      } else if (id !== '1') notificationEvents.add(1);
      else if (event.kind === 'MESSAGE') messageEvents.add(1);
    },
    failure: fail,
    close: (live) => {
      if (!live.closedByUs) closedEarly.add(1);
    },
  };
  for (let slot = 0; slot < PER_VU; slot += 1) {
    const index = slot * VUS + vu;
    if (index >= tokens.length) break;
    await sleep(started + (index * 1000) / RATE - Date.now());
    const live = openLive(URL, tokens[index], [MESSAGE_EVENTS, NOTIFICATION_EVENTS], handlers);
    live.ws.addEventListener('open', () => opened.add(1));
    lives.push(live);
    // One handshake in flight per VU: a server slower than RATE is not flooded with
    // connects it cannot accept in time (the ramp then runs at the server's pace).
    await within(live.settled, HANDSHAKE_MS);
  }
  const deadline = started + (tokens.length * 1000) / RATE + HOLD_MAX * 1000;
  while (Date.now() < deadline) {
    const answer = await http.asyncRequest('GET', __ENV.CONTROL, null, { timeout: '5s' });
    if (answer.status === 200 && answer.body === 'stop') break;
    await sleep(1000);
  }
  const open = lives.filter((live) => live.acked && !live.closed && live.ws.readyState === 1);
  openAtEnd.add(open.length);
  lives.forEach(closeLive);
  await allClosed(lives, 10000);
}

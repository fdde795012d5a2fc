// Forced reconnects while messages flow (bench/realtime.py, part "loss"). Each VU is one
// receiver with one thread: it connects to TARGET, subscribes to messageEvents, catches
// up over HTTP with messages(threadId, first: 100, after: <the last seq it saw>) page by
// page, keeps the socket for a random while, closes it, stays away a moment, and again,
// CYCLES times. A GAP event triggers a catch-up too. Once the sending is over it connects
// a last time, catches up, waits DRAIN seconds and prints what it saw, one JSON line to
// the console: {"receiver", "seen": [[seq, text], ...], "live", "caughtUp", "overlap",
// "liveTwice", "outOfOrder", "jumps", "gaps", "reconnects"}; bench/realtime.py compares it with
// the rows in PostgreSQL.
//
// Scenario "senders" (from WARM seconds, constant-arrival-rate at RATE for SEND_SECONDS):
// iteration i sends `loss <i mod R> <i>` through SENDER into thread i mod R.
//
// -e knobs: TARGET, SENDER, DATA (as realtime_latency.js), RATE, SEND_SECONDS, WARM,
// CYCLES, HOLD_MS (mean time a socket stays), DRAIN, TIMEOUT, SUMMARY.
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';

import {
  closeLive,
  openLive,
  printFailure,
  receiveWhileSending,
  sendInto,
  sleep,
  threadPairs,
  within,
  wsUrl,
} from './realtime_common.js';

export { handleSummary } from './common.js';

const data = threadPairs();
const RATE = parseInt(__ENV.RATE || '100', 10);
const SEND_SECONDS = parseInt(__ENV.SEND_SECONDS || '30', 10);
const WARM = parseInt(__ENV.WARM || '3', 10);
const CYCLES = parseInt(__ENV.CYCLES || '20', 10);
const HOLD_MS = parseFloat(__ENV.HOLD_MS || '1000');
const DRAIN = parseInt(__ENV.DRAIN || '3', 10);
const URL = wsUrl(__ENV.TARGET);
const HTTP_URL = `${__ENV.TARGET}/graphql`;
const TIMEOUT = __ENV.TIMEOUT || '5s';
const THREAD_EVENTS =
  'subscription($t: ID) { messageEvents(threadId: $t) { kind threadId seq message { seq text } } }';
const CATCH_UP =
  'query($t: ID!, $after: String) { messages(threadId: $t, first: 100, after: $after) ' +
  '{ edges { cursor node { seq text } } pageInfo { hasNextPage } } }';

export const options = receiveWhileSending({
  receivers: data.length,
  receiveSeconds: WARM + SEND_SECONDS + CYCLES * 5 + DRAIN + 60,
  warm: WARM,
  rate: RATE,
  sendSeconds: SEND_SECONDS,
  preVUs: 20,
  maxVUs: 200,
});

const sentOk = new Counter('sent_ok');
const failedSends = new Rate('failed_sends');
const reconnects = new Counter('reconnects');
const catchUps = new Counter('catch_ups');
const catchUpTime = new Trend('catch_up_ms', true);
const failures = new Counter('socket_failures');
const gaps = new Counter('gap_events');

function post(url, token, query, variables) {
  return http.asyncRequest('POST', url, JSON.stringify({ query, variables }), {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    timeout: TIMEOUT,
  });
}

export async function receive() {
  const receiverIndex = exec.scenario.iterationInTest;
  const pair = data[receiverIndex];
  const seen = new Map(); // seq -> text: what the user's screen shows
  const state = {
    lastSeq: null,
    live: 0,
    caughtUp: 0,
    overlap: 0,
    liveTwice: 0,
    outOfOrder: 0,
    jumps: 0,
  };
  const state_gaps = { count: 0 };
  let forced = 0;

  function take(seq, text, fromSocket, connectionSeen) {
    if (fromSocket) {
      if (connectionSeen.has(seq)) state.liveTwice += 1;
      connectionSeen.add(seq);
      if (state.lastSeq !== null && seq < state.lastSeq) state.outOfOrder += 1;
      // Live, past a seq never seen: what was in between missed the socket (the catch-up
      // from this cursor would skip it; only the final comparison can tell).
      if (state.lastSeq !== null && seq > state.lastSeq + 1 && !seen.has(state.lastSeq + 1)) {
        state.jumps += 1;
      }
    }
    if (seen.has(seq)) {
      state.overlap += 1;
      if (seen.get(seq) !== text) printFailure(`seq ${seq} seen with two texts`);
      return;
    }
    seen.set(seq, text);
    if (fromSocket) state.live += 1;
    else state.caughtUp += 1;
    if (state.lastSeq === null || seq > state.lastSeq) state.lastSeq = seq;
  }

  async function catchUp() {
    const started = Date.now();
    let after = state.lastSeq === null ? null : String(state.lastSeq);
    for (let page = 0; page < 1000; page += 1) {
      const response = await post(HTTP_URL, pair.receiver, CATCH_UP, { t: pair.thread, after });
      const body = response.status === 200 ? JSON.parse(response.body) : null;
      if (!body || body.errors || !body.data) {
        printFailure(`catch-up status=${response.status} body=${String(response.body).slice(0, 300)}`);
        return;
      }
      const edges = body.data.messages.edges;
      edges.forEach((edge) => take(edge.node.seq, edge.node.text, false, null));
      if (!body.data.messages.pageInfo.hasNextPage || edges.length === 0) break;
      after = edges[edges.length - 1].cursor;
    }
    catchUps.add(1);
    catchUpTime.add(Date.now() - started);
  }

  // One connection: subscribe, then, once live, catch up (what lands in between arrives
  // twice at most, never not at all), then hold it `holdMs`.
  async function connection(holdMs) {
    const connectionSeen = new Set();
    let acked = false;
    let pendingGap = false;
    const live = openLive(URL, pair.receiver, [], {
      ack: (socket) => {
        acked = true;
        socket.ws.send(
          JSON.stringify({
            id: '1',
            type: 'subscribe',
            payload: { query: THREAD_EVENTS, variables: { t: pair.thread } },
          }),
        );
      },
      event: (socket, id, payload) => {
        const event = payload.messageEvents;
        if (!event) return;
        if (event.kind === 'GAP') {
          state_gaps.count += 1;
          gaps.add(1);
          pendingGap = true;
        } else if (event.kind === 'MESSAGE' && event.message) {
          take(event.message.seq, event.message.text, true, connectionSeen);
        }
      },
      failure: (socket, message) => {
        failures.add(1);
        printFailure(`socket: ${message}`);
      },
    });
    await within(live.settled, 5000);
    if (acked) {
      // The subscription's first event is a GAP, once the server is live: catch up then.
      const liveBy = Date.now() + 5000;
      while (!pendingGap && !live.closed && Date.now() < liveBy) await sleep(5);
      if (!pendingGap) printFailure('no first GAP within 5 s');
      pendingGap = false;
      await catchUp();
      const until = Date.now() + holdMs;
      while (Date.now() < until && !live.closed) {
        if (pendingGap) {
          pendingGap = false;
          await catchUp();
        }
        await sleep(Math.min(50, until - Date.now()));
      }
    } else {
      printFailure('no connection_ack within 5 s');
    }
    closeLive(live);
    const closing = Date.now() + 5000;
    while (!live.closed && Date.now() < closing) await sleep(10);
  }

  const sendEnd = Date.now() + (WARM + SEND_SECONDS) * 1000;
  for (let cycle = 0; cycle < CYCLES; cycle += 1) {
    await connection(Math.random() * 2 * HOLD_MS);
    forced += 1;
    reconnects.add(1);
    await sleep(50 + Math.random() * 250); // away while messages keep coming
  }
  await sleep(sendEnd + 1000 - Date.now());
  await connection(DRAIN * 1000);
  const seenList = Array.from(seen.entries()).sort((a, b) => a[0] - b[0]);
  console.log(
    JSON.stringify({
      receiver: receiverIndex,
      seen: seenList,
      live: state.live,
      caughtUp: state.caughtUp,
      overlap: state.overlap,
      liveTwice: state.liveTwice,
      outOfOrder: state.outOfOrder,
      jumps: state.jumps,
      gaps: state_gaps.count,
      reconnects: forced,
    }),
  );
}

export function send() {
  const index = exec.scenario.iterationInTest;
  const receiver = index % data.length;
  const { failure } = sendInto(data[receiver], `loss ${receiver} ${index}`);
  failedSends.add(failure !== '');
  if (failure) printFailure(failure);
  else sentOk.add(1);
}

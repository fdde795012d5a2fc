// Delivery latency at a fixed send rate (bench/realtime.py, part "latency"): from the
// start of a sendMessage mutation on one server process (SENDER) to the `next` frame on a
// subscriber's socket on another (TARGET).
//
// Scenario "receivers": every receiver's socket (PER_VU per VU) subscribes to
// messageEvents and notificationEvents and stays open until the sending is over plus
// DRAIN seconds. Scenario "senders" starts WARM seconds in, constant-arrival-rate at
// RATE messages per second for DURATION seconds: iteration i sends, as sender i mod P,
// `lat <Date.now()> <i>` into thread i mod P, whose other member is receiver i mod P.
// The receiver takes Date.now() minus the embedded time (one clock: the same k6
// process, millisecond resolution).
//
// -e knobs: TARGET, SENDER (base URLs), DATA ({"senders": [tokens], "receivers": [tokens],
// "threads": [thread ids]}, index-aligned), RATE, DURATION, WARM, DRAIN, PER_VU,
// PRE_VUS, MAX_VUS, TIMEOUT, SUMMARY.
import http from 'k6/http';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
import { Counter, Rate, Trend } from 'k6/metrics';

import {
  MESSAGE_EVENTS,
  NOTIFICATION_EVENTS,
  TREND_STATS,
  allClosed,
  closeLive,
  openLive,
  sleep,
  wsUrl,
} from './realtime_common.js';

const data = new SharedArray('pairs', () => {
  const parsed = JSON.parse(open(__ENV.DATA));
  return parsed.threads.map((thread, index) => ({
    thread,
    sender: parsed.senders[index],
    receiver: parsed.receivers[index],
  }));
});
const RATE = parseInt(__ENV.RATE || '100', 10);
const DURATION = parseInt(__ENV.DURATION || '15', 10);
const WARM = parseInt(__ENV.WARM || '5', 10);
const DRAIN = parseInt(__ENV.DRAIN || '5', 10);
const PER_VU = parseInt(__ENV.PER_VU || '25', 10);
const RECEIVER_VUS = Math.ceil(data.length / PER_VU);
const URL = wsUrl(__ENV.TARGET);
const SEND_URL = `${__ENV.SENDER}/graphql`;
const TIMEOUT = __ENV.TIMEOUT || '5s';
const SEND =
  'mutation($t: ID!, $text: String!) { sendMessage(input: {threadId: $t, text: $text}) ' +
  '{ message { seq } } }';

export const options = {
  summaryTrendStats: TREND_STATS,
  scenarios: {
    receivers: {
      executor: 'per-vu-iterations',
      exec: 'receive',
      vus: RECEIVER_VUS,
      iterations: 1,
      maxDuration: `${WARM + DURATION + DRAIN + 30}s`,
    },
    senders: {
      executor: 'constant-arrival-rate',
      exec: 'send',
      startTime: `${WARM}s`,
      rate: RATE,
      timeUnit: '1s',
      duration: `${DURATION}s`,
      preAllocatedVUs: parseInt(__ENV.PRE_VUS || '50', 10),
      maxVUs: parseInt(__ENV.MAX_VUS || '400', 10),
      gracefulStop: '5s',
    },
  },
};

const delivery = new Trend('delivery_ms', true);
const sendTime = new Trend('send_ms', true);
const sentOk = new Counter('sent_ok');
const failedSends = new Rate('failed_sends');
const received = new Counter('received');
const duplicates = new Counter('received_twice');
const notificationEvents = new Counter('events_notification');
const acked = new Counter('sockets_acked');
const closedEarly = new Counter('sockets_closed_early');
const failures = new Counter('socket_failures');
let reported = 0;

function report(message) {
  if (reported < 5) {
    reported += 1;
    console.error(`FAILED ${message}`);
  }
}

export async function receive() {
  const vu = exec.scenario.iterationInTest;
  const lives = [];
  const seen = new Set();
  const handlers = {
    ack: () => acked.add(1),
    event: (live, id, payload) => {
      if (id !== '1') {
        if ((payload.notificationEvents || {}).kind !== 'GAP') notificationEvents.add(1);
        return;
      }
      const event = payload.messageEvents;
      if (!event || event.kind !== 'MESSAGE' || !event.message) return;
      const parts = (event.message.text || '').split(' ');
      if (parts[0] !== 'lat') return;
      const key = `${event.threadId}:${event.seq}`;
      if (seen.has(key)) {
        duplicates.add(1);
        return;
      }
      seen.add(key);
      received.add(1);
      delivery.add(Date.now() - parseInt(parts[1], 10));
    },
    failure: (live, message) => {
      failures.add(1);
      report(`socket: ${message}`);
    },
    close: (live) => {
      if (!live.closedByUs) closedEarly.add(1);
    },
  };
  const started = Date.now();
  for (let slot = 0; slot < PER_VU; slot += 1) {
    const index = vu * PER_VU + slot;
    if (index >= data.length) break;
    lives.push(openLive(URL, data[index].receiver, [MESSAGE_EVENTS, NOTIFICATION_EVENTS], handlers));
    await sleep(10);
  }
  await sleep(started + (WARM + DURATION + DRAIN) * 1000 - Date.now());
  lives.forEach(closeLive);
  await allClosed(lives, 10000);
}

export function send() {
  const index = exec.scenario.iterationInTest;
  const pair = data[index % data.length];
  const body = JSON.stringify({
    query: SEND,
    variables: { t: pair.thread, text: `lat ${Date.now()} ${index}` },
  });
  const response = http.post(SEND_URL, body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${pair.sender}` },
    timeout: TIMEOUT,
  });
  const text = typeof response.body === 'string' ? response.body : '';
  const bad = response.status !== 200 || !text.includes('"seq"') || text.includes('"errors"');
  failedSends.add(bad);
  sendTime.add(response.timings.duration);
  if (bad) report(`send status=${response.status} error=${response.error} body=${text.slice(0, 300)}`);
  else sentOk.add(1);
}

export function handleSummary(summary) {
  return { [__ENV.SUMMARY]: JSON.stringify(summary) };
}

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
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';

import {
  MESSAGE_EVENTS,
  NOTIFICATION_EVENTS,
  allClosed,
  closeLive,
  openLive,
  printFailure,
  receiveWhileSending,
  sendInto,
  sleep,
  threadPairs,
  wsUrl,
} from './realtime_common.js';

export { handleSummary } from './common.js';

const data = threadPairs();
const RATE = parseInt(__ENV.RATE || '100', 10);
const DURATION = parseInt(__ENV.DURATION || '15', 10);
const WARM = parseInt(__ENV.WARM || '5', 10);
const DRAIN = parseInt(__ENV.DRAIN || '5', 10);
const PER_VU = parseInt(__ENV.PER_VU || '25', 10);
const RECEIVER_VUS = Math.ceil(data.length / PER_VU);
const URL = wsUrl(__ENV.TARGET);

export const options = receiveWhileSending({
  receivers: RECEIVER_VUS,
  receiveSeconds: WARM + DURATION + DRAIN + 30,
  warm: WARM,
  rate: RATE,
  sendSeconds: DURATION,
  preVUs: 50,
  maxVUs: 400,
});

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
      printFailure(`socket: ${message}`);
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
  const { response, failure } = sendInto(data[index % data.length], `lat ${Date.now()} ${index}`);
  failedSends.add(failure !== '');
  sendTime.add(response.timings.duration);
  if (failure) printFailure(failure);
  else sentOk.add(1);
}

// Shared by the k6 scripts: an open-model scenario at a fixed arrival rate, configured
// from -e VAR=value (RATE, DURATION, PRE_VUS, MAX_VUS; see feed_reads.js).

export function fixedRateOptions(scenario) {
  return {
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
    scenarios: {
      [scenario]: {
        executor: 'constant-arrival-rate',
        rate: parseInt(__ENV.RATE || '50', 10),
        timeUnit: '1s',
        duration: `${__ENV.DURATION || '20'}s`,
        preAllocatedVUs: parseInt(__ENV.PRE_VUS || '20', 10),
        maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
        gracefulStop: '5s',
      },
    },
  };
}

// What an idle berthd costs a node (issue 6): a real berthd of our own (dist/berthd.js against
// n1's dockerd, metrics on, no authz) idles for a measured window while /metrics is scraped
// every 15 s as Prometheus would; prints CPU seconds per hour (from /proc/PID/stat) and RSS.
// Figures only.   npm run build && npm run bench:idle [-- --seconds 60]
import { performance } from 'node:perf_hooks';
import { cpuSecondsOf, rssOf, startOwnBerthd } from './support/own-berthd';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 60;
const MB = 1024 * 1024;
const berthd = await startOwnBerthd('idle-bench', {}, { metrics: true });
try {
  // let start-up (recovery, the first scrape's lazy work) settle before measuring
  await fetch(`http://${berthd.metrics}/metrics`).then((r) => r.text());
  await new Promise((r) => setTimeout(r, 5000));
  const cpu0 = cpuSecondsOf(berthd.pid);
  const rss0 = rssOf(berthd.pid);
  const began = performance.now();
  let scrapes = 0;
  let scrapeMs = 0;
  let bodyBytes = 0;
  while (performance.now() - began < seconds * 1000) {
    const t = performance.now();
    const body = await (await fetch(`http://${berthd.metrics}/metrics`)).text();
    scrapeMs += performance.now() - t;
    bodyBytes = body.length;
    scrapes++;
    const next = Math.min(15_000, seconds * 1000 - (performance.now() - began));
    if (next > 0) await new Promise((r) => setTimeout(r, next));
  }
  const window = (performance.now() - began) / 1000;
  const cpu = cpuSecondsOf(berthd.pid) - cpu0;
  const rss = rssOf(berthd.pid);
  console.log(`idle berthd (metrics on, scraped every 15 s) over ${window.toFixed(1)} s: ${cpu.toFixed(2)} CPU s → ${(cpu / window * 3600).toFixed(1)} CPU s/hour (${(cpu / window * 100).toFixed(3)} % of one core)`);
  console.log(`RSS ${(rss0.rss / MB).toFixed(1)} MiB at the start of the window, ${(rss.rss / MB).toFixed(1)} MiB at the end (peak ${(rss.peak / MB).toFixed(1)} MiB)`);
  console.log(`${scrapes} scrapes, ${(scrapeMs / scrapes).toFixed(1)} ms each on average, ${(bodyBytes / 1024).toFixed(1)} KiB of exposition text`);
} finally {
  await berthd.stop();
}

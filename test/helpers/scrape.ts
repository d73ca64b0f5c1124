/** One sample line of a Prometheus text scrape: `name{labels} value`. */
export interface ScrapedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The sample lines of a scrape (comments and blank lines left out). */
export function parseSamples(text: string): ScrapedSample[] {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(l);
      if (m === null) throw new Error(`not a sample line: ${l}`);
      const labels = Object.fromEntries(
        [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((p) => [p[1]!, p[2]!]),
      );
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

/** GET `url` (a daemon's /metrics) and parse it. */
export async function scrape(url: string): Promise<ScrapedSample[]> {
  return parseSamples(await (await fetch(url)).text());
}

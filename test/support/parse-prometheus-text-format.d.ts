/** Types of the Prometheus text-format parser the metrics test uses (the package ships none). */
declare module 'parse-prometheus-text-format' {
  /** One metric family as the parser returns it. */
  export interface ParsedMetric {
    name: string;
    help: string;
    type: string;
    metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }[];
  }
  /** Parse Prometheus text exposition into metric families. */
  export default function parsePrometheusTextFormat(text: string): ParsedMetric[];
}

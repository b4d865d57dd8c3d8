// Serves each draft's full experiment results (results/*.json, *.csv) at the URL the
// post's relative link points to (../../assets/images/ramble2post/<slug>/results/...
// from /posts/<slug>/). Astro optimises the plots itself; these files it would not copy.
import type { APIRoute, GetStaticPaths } from "astro";

const PREFIX = "/src/assets/images/ramble2post/";
const files = import.meta.glob("/src/assets/images/ramble2post/*/results/*.{json,csv}", {
  query: "?raw",
  import: "default",
  eager: true,
}) as Record<string, string>;

export const getStaticPaths = (() =>
  Object.entries(files).map(([path, body]) => ({
    params: { file: path.slice(PREFIX.length) },
    props: { body, csv: path.endsWith(".csv") },
  }))) satisfies GetStaticPaths;

export const GET: APIRoute = ({ props }) =>
  new Response(props.body as string, {
    headers: { "Content-Type": props.csv ? "text/csv; charset=utf-8" : "application/json; charset=utf-8" },
  });

// The blog ramble2post creates: a small Astro 5 site with AstroPaper's content
// layout (posts under src/data/blog/, the same front matter), written from scratch.
import { defineConfig } from "astro/config";

export default defineConfig({
  site: "https://example.com/",
  // Markdown from ramble2post escapes every transcript/model character, so the only raw
  // HTML in a post is the view wrappers its template writes (<section>, <details>).
});

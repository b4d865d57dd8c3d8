// Stub Astro config (AstroPaper v5 layout). ramble2post only needs the folders;
// to build the site, start from the AstroPaper template and copy src/data/blog/ over.
import { defineConfig } from "astro/config";

export default defineConfig({
  site: "https://example.com/",
});

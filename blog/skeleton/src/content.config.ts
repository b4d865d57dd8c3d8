// Posts: Markdown under src/data/blog/ with AstroPaper's front matter, plus the
// `ramble2post:` block that drafts carry (declared, so pages can read it).
import { defineCollection, z } from "astro:content";
import { glob } from "astro/loaders";
import { SITE } from "./config";

const ramble2post = z
  .object({
    schema_version: z.number().int(),
    slug: z.string().optional(),
    audio_sha256: z.string().nullable().optional(),
    transcript_sha256: z.string().nullable().optional(),
    verify_marks: z.number().int().optional(),
    author_notes: z.number().int().optional(),
    hardware: z.string().nullable().optional(),
    assets: z.string().optional(),
    views: z.array(z.string()).optional(),
  })
  .passthrough();

const blog = defineCollection({
  loader: glob({ pattern: "**/[^_]*.md", base: "./src/data/blog" }),
  schema: ({ image }) =>
    z.object({
      author: z.string().default(SITE.author),
      pubDatetime: z.date(),
      modDatetime: z.date().optional().nullable(),
      title: z.string(),
      featured: z.boolean().optional(),
      draft: z.boolean().optional(),
      tags: z.array(z.string()).default(["others"]),
      ogImage: image().or(z.string()).optional(),
      description: z.string(),
      canonicalURL: z.string().optional(),
      hideEditPost: z.boolean().optional(),
      timezone: z.string().optional(),
      ramble2post: ramble2post.optional(),
    }),
});

export const collections = { blog };

// Which posts a page lists. Unlike AstroPaper, drafts are shown in `astro dev` and in
// a build run with SHOW_DRAFTS=1 (`npm run build:drafts`, `ramble2post preview`),
// marked as drafts, so the author can read a draft in their own site before publishing.
import { getCollection, type CollectionEntry } from "astro:content";

export type Post = CollectionEntry<"blog">;

export function showDrafts(): boolean {
  return import.meta.env.DEV || process.env.SHOW_DRAFTS === "1";
}

export async function visiblePosts(): Promise<Post[]> {
  const drafts = showDrafts();
  const posts = await getCollection("blog", ({ data }) => drafts || !data.draft);
  return posts.sort((a, b) => b.data.pubDatetime.valueOf() - a.data.pubDatetime.valueOf());
}

export function postPath(post: Post): string {
  return `/posts/${post.id}/`;
}

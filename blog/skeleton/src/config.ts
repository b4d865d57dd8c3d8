// Site-wide settings: edit these for your blog.
export const SITE = {
  title: "My ramble blog",
  author: "The author",
  description: "Posts drafted from spoken rambles by ramble2post, reviewed by their author.",
  postsPerIndex: 50,
};

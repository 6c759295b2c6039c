"""Reports rendered from the result store: leaderboard markdown, HTML, exports. Nothing typed by hand."""

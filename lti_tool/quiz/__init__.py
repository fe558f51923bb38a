"""The completion certification test (修了認定テスト): settings, timed attempts, server-side
scoring, review, results and statistics, regrading, and its grade to the LMS."""

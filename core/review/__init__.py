"""Label-issue scores (out-of-fold probabilities, self-confidence, margin, confident learning) on arrays;
`core.steps.review` stores the queue in the database."""

"""The extraction pipeline: keys, engines, output checks, progress; from input records to staged batches."""

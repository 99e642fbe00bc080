# Issue 14, item 1: sagad refuses topics whose partition count differs from
# --partitions (or that it cannot create), commands carry reply_partition and
# replies land on it.
saga_stack_test(it_partitions test_partitions.sh)

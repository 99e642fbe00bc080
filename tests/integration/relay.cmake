# The outbox relay against a broker that refuses records for good, and
# messages over the size limit (issue 13, items 1 and 2). Both run on the
# dev broker and, as *_real, on Apache Kafka.
saga_stack_test(it_refused_record test_refused_record.sh)
saga_stack_test(it_oversized_messages test_oversized_messages.sh)

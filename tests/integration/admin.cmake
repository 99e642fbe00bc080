# The admin API under hostile input on the default stack (no token
# configured): cross-site forms, DNS rebinding, oversized requests, unknown
# versions; sagactl through the token file sagad made (issue 13 items 3, 7).
saga_stack_test(it_admin_hostile test_admin_hostile.sh)
# Bulk retry after an outage and bulk abort (POST /v1/sagas/retry, /abort,
# sagactl retry|abort with filters): 500 sagas parked in compensation_failed
# retried by one request, nothing else touched; prints the loop's longest
# iteration meanwhile (issue 16 part 4).
saga_stack_test(it_bulk_retry test_bulk_retry.sh)
# The same on three sagad instances: the selection gathered from every
# owner through the instance asked, each command applied by its saga's owner.
saga_stack_test(it_bulk_retry_cluster test_bulk_retry.sh)
set_property(TEST it_bulk_retry_cluster APPEND PROPERTY ENVIRONMENT "SAGAD_INSTANCES=3")

# The admin API under hostile input on the default stack (no token
# configured): cross-site forms, DNS rebinding, oversized requests, unknown
# versions; sagactl through the token file sagad made (issue 13 items 3, 7).
saga_stack_test(it_admin_hostile test_admin_hostile.sh)

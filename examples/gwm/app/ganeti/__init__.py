"""Package ganeti: the clusters GWM manages and the jobs celery workers run against them."""

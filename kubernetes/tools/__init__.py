"""Offline tools of the Kubernetes deployment: the chart's StatsD values from our mapping, kubectl and helm."""

"""CDK app of the Personalize ingest pipeline: typed configuration, one construct per concern, one stack."""

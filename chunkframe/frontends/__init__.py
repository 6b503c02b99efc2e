"""What users type: pandas accessors, the command line and its demo."""

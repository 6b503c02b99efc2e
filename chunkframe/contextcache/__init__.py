"""Context entries and their keyword index, after Apache Linkis' context cache."""

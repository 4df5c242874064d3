"""What the chapters' pages say about their numbers: the sentences, rows and settings lines each chapter glues
into its prose, generated from the measurements so that the text holds for whatever run produced them."""

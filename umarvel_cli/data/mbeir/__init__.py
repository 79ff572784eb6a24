"""M-BEIR: the task table, the input layout, the record parsers and the `prepare mbeir` reader."""

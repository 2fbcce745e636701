-- Gmail's own view of a found message (issue 5), recorded only on servers that announce
-- X-GM-EXT-1: its labels (X-GM-LABELS, a JSON array of the label names as Gmail sent them)
-- and the inbox tab it was sorted into (X-GM-RAW "category:…"; NULL outside the inbox or
-- on other servers). The folder class in `placement` follows the tab (see GmailTab).
ALTER TABLE placements ADD COLUMN gmail_labels TEXT;
ALTER TABLE placements ADD COLUMN gmail_tab TEXT CHECK (gmail_tab IN ('primary', 'promotions', 'social', 'updates', 'forums'));

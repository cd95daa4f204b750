-- fb_cleaned
WITH raw AS (
  SELECT
    CAST(_row AS BIGINT) AS _row,
    CAST(_ref AS STRING) AS _ref,
    CAST(response_no AS STRING) AS r__response_no,
    CAST(channel AS STRING) AS r__channel,
    COALESCE(CAST(NULL AS STRING), 'SH01') AS r__store_code,
    CAST(score AS STRING) AS r__score,
    CAST(text AS STRING) AS r__text,
    CAST(submitted_at AS STRING) AS r__submitted_at,
    CAST(gender AS STRING) AS r__gender,
    CAST(phone AS STRING) AS r__phone,
    CAST(id_card AS STRING) AS r__id_card
  FROM staged
), l0 AS (
  SELECT
    *,
    COALESCE(
      (
        r__response_no <> ''
        AND NOT CONTAINS(r__response_no, '  ')
        AND r__response_no NOT LIKE ' %'
        AND r__response_no NOT LIKE '% '
        AND NOT CONTAINS(r__response_no, CHR(  9))
        AND NOT CONTAINS(r__response_no, CHR(  10))
        AND NOT CONTAINS(r__response_no, CHR(  13))
        AND (
          OCTET_LENGTH((
            r__response_no
          )) = LENGTH(r__response_no)
          OR NOT r__response_no RLIKE '[！-～　 。]'
        )
      ),
      FALSE
    ) AS h__response_no__fast,
    COALESCE(
      r__channel IN (
        'web',
        'h5',
        'wechat_oa',
        'wechat_mp',
        'wecom',
        'douyin',
        'xhs',
        'weibo',
        'meituan',
        'dianping',
        'ecommerce',
        'pos',
        'his',
        'call_center',
        'chat',
        'sms',
        'email',
        'survey',
        'third_party',
        'app',
        'offline',
        '官网',
        '网站',
        'website',
        'pc',
        '落地页',
        'm站',
        '微信',
        '公众号',
        '微信公众号',
        'wechat',
        '小程序',
        '微信小程序',
        'miniprogram',
        '企业微信',
        '企微',
        'wework',
        '抖音',
        'tiktok',
        'dy',
        '小红书',
        '红书',
        'xiaohongshu',
        'red',
        '微博',
        '美团',
        '大众点评',
        '点评',
        '天猫',
        '京东',
        '有赞',
        '电商',
        'tmall',
        'jd',
        'youzan',
        '门店',
        '收银',
        '到店',
        '线下',
        'store',
        '诊所系统',
        '电话',
        '呼叫中心',
        '400',
        'callcenter',
        '在线客服',
        '客服',
        'livechat',
        '短信',
        '邮件',
        '问卷',
        '第三方',
        'ios',
        'android'
      ),
      FALSE
    ) AS h__channel__fast,
    COALESCE(r__store_code RLIKE '^[0-9A-Z_./-]+$', FALSE) AS h__store_code__fast,
    COALESCE(r__score RLIKE '^[0-9]{1,9}$', FALSE) AS h__score__fast,
    COALESCE(
      (
        r__text <> ''
        AND NOT CONTAINS(r__text, '  ')
        AND r__text NOT LIKE ' %'
        AND r__text NOT LIKE '% '
        AND NOT CONTAINS(r__text, CHR(  9))
        AND NOT CONTAINS(r__text, CHR(  10))
        AND NOT CONTAINS(r__text, CHR(  13))
        AND (
          OCTET_LENGTH((
            r__text
          )) = LENGTH(r__text) OR NOT r__text RLIKE '[！-～　 。]'
        )
      ),
      FALSE
    ) AS h__text__fast,
    COALESCE(
      r__submitted_at RLIKE '^\\d{4}[-/](0?[1-9]|1[0-2])[-/](0?[1-9]|[12]\\d|3[01])( ([01]?\\d|2[0-3]):[0-5]\\d(:[0-5]\\d)?)?$'
      AND r__submitted_at >= '1900'
      AND r__submitted_at < '2101'
      AND NOT TRY_CAST(REPLACE(r__submitted_at, '/', '-') AS TIMESTAMP_NTZ) IS NULL,
      FALSE
    ) AS h__submitted_at__fast,
    COALESCE(
      r__gender IN (
        '男',
        '男性',
        '男士',
        '先生',
        'm',
        'male',
        'man',
        '1',
        '女',
        '女性',
        '女士',
        '小姐',
        'f',
        'female',
        'woman',
        '2'
      ),
      FALSE
    ) AS h__gender__fast,
    COALESCE(
      r__phone RLIKE '^(?:1(?:610\\d|740[0-5])\\d{6}|1(?:[38]\\d|4[57]|[59][0-35-9]|6[25-7]|7[0-35-8])\\d{8})$',
      FALSE
    ) AS h__phone__fast,
    UPPER(
      REPLACE(
        CASE
          WHEN OCTET_LENGTH((
            r__id_card
          )) <> LENGTH(r__id_card)
          AND r__id_card RLIKE '[！-～　 。]'
          THEN TRANSLATE(
            r__id_card,
            '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
            '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
          )
          ELSE r__id_card
        END,
        ' ',
        ''
      )
    ) AS h__id_card__s
  FROM raw
), l1 AS (
  SELECT
    *,
    CASE
      WHEN h__response_no__fast
      THEN NULL
      ELSE NULLIF(
        TRIM(
          REGEXP_REPLACE(
            CASE
              WHEN OCTET_LENGTH((
                r__response_no
              )) <> LENGTH(r__response_no)
              AND r__response_no RLIKE '[！-～　 。]'
              THEN TRANSLATE(
                r__response_no,
                '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
                '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
              )
              ELSE r__response_no
            END,
            '\\s+',
            ' '
          )
        ),
        ''
      )
    END AS h__response_no__value,
    CASE
      WHEN h__channel__fast
      THEN NULL
      ELSE LOWER(
        REPLACE(
          CASE
            WHEN OCTET_LENGTH((
              r__channel
            )) <> LENGTH(r__channel)
            AND r__channel RLIKE '[！-～　 。]'
            THEN TRANSLATE(
              r__channel,
              '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
              '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
            )
            ELSE r__channel
          END,
          ' ',
          ''
        )
      )
    END AS h__channel__c,
    CASE
      WHEN h__store_code__fast
      THEN NULL
      ELSE NULLIF(
        UPPER(
          REPLACE(
            CASE
              WHEN OCTET_LENGTH((
                r__store_code
              )) <> LENGTH(r__store_code)
              AND r__store_code RLIKE '[！-～　 。]'
              THEN TRANSLATE(
                r__store_code,
                '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
                '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
              )
              ELSE r__store_code
            END,
            ' ',
            ''
          )
        ),
        ''
      )
    END AS h__store_code__value,
    CASE
      WHEN h__score__fast
      THEN NULL
      ELSE REGEXP_REPLACE(
        CASE
          WHEN OCTET_LENGTH((
            r__score
          )) <> LENGTH(r__score) AND r__score RLIKE '[！-～　 。]'
          THEN TRANSLATE(
            r__score,
            '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
            '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
          )
          ELSE r__score
        END,
        '[ ,]',
        ''
      )
    END AS h__score__s,
    CASE
      WHEN h__text__fast
      THEN NULL
      ELSE NULLIF(
        TRIM(
          REGEXP_REPLACE(
            CASE
              WHEN OCTET_LENGTH((
                r__text
              )) <> LENGTH(r__text) AND r__text RLIKE '[！-～　 。]'
              THEN TRANSLATE(
                r__text,
                '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
                '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
              )
              ELSE r__text
            END,
            '\\s+',
            ' '
          )
        ),
        ''
      )
    END AS h__text__value,
    CASE
      WHEN h__submitted_at__fast
      THEN NULL
      ELSE NULLIF(
        UPPER(
          TRIM(
            CASE
              WHEN OCTET_LENGTH((
                r__submitted_at
              )) <> LENGTH(r__submitted_at)
              AND r__submitted_at RLIKE '[！-～　 。]'
              THEN TRANSLATE(
                r__submitted_at,
                '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
                '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
              )
              ELSE r__submitted_at
            END
          )
        ),
        ''
      )
    END AS h__submitted_at__s,
    CASE
      WHEN h__gender__fast
      THEN NULL
      ELSE LOWER(
        REPLACE(
          CASE
            WHEN OCTET_LENGTH((
              r__gender
            )) <> LENGTH(r__gender) AND r__gender RLIKE '[！-～　 。]'
            THEN TRANSLATE(
              r__gender,
              '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
              '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
            )
            ELSE r__gender
          END,
          ' ',
          ''
        )
      )
    END AS h__gender__g,
    CASE
      WHEN h__phone__fast
      THEN NULL
      ELSE REGEXP_REPLACE(
        CASE
          WHEN OCTET_LENGTH((
            r__phone
          )) <> LENGTH(r__phone) AND r__phone RLIKE '[！-～　 。]'
          THEN TRANSLATE(
            r__phone,
            '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　 。',
            '!"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~  .'
          )
          ELSE r__phone
        END,
        '[ ()./-]',
        ''
      )
    END AS h__phone__d,
    h__id_card__s RLIKE '^[0-9]{17}[0-9X]$'
    AND SUBSTRING(
      '10X98765432',
      (
        TRY_CAST(SUBSTRING(h__id_card__s, 1, 1) AS INT) * 7 + TRY_CAST(SUBSTRING(h__id_card__s, 2, 1) AS INT) * 9 + TRY_CAST(SUBSTRING(h__id_card__s, 3, 1) AS INT) * 10 + TRY_CAST(SUBSTRING(h__id_card__s, 4, 1) AS INT) * 5 + TRY_CAST(SUBSTRING(h__id_card__s, 5, 1) AS INT) * 8 + TRY_CAST(SUBSTRING(h__id_card__s, 6, 1) AS INT) * 4 + TRY_CAST(SUBSTRING(h__id_card__s, 7, 1) AS INT) * 2 + TRY_CAST(SUBSTRING(h__id_card__s, 8, 1) AS INT) * 1 + TRY_CAST(SUBSTRING(h__id_card__s, 9, 1) AS INT) * 6 + TRY_CAST(SUBSTRING(h__id_card__s, 10, 1) AS INT) * 3 + TRY_CAST(SUBSTRING(h__id_card__s, 11, 1) AS INT) * 7 + TRY_CAST(SUBSTRING(h__id_card__s, 12, 1) AS INT) * 9 + TRY_CAST(SUBSTRING(h__id_card__s, 13, 1) AS INT) * 10 + TRY_CAST(SUBSTRING(h__id_card__s, 14, 1) AS INT) * 5 + TRY_CAST(SUBSTRING(h__id_card__s, 15, 1) AS INT) * 8 + TRY_CAST(SUBSTRING(h__id_card__s, 16, 1) AS INT) * 4 + TRY_CAST(SUBSTRING(h__id_card__s, 17, 1) AS INT) * 2
      ) % 11 + 1,
      1
    ) = SUBSTRING(h__id_card__s, 18, 1)
    AND YEAR(
      TRY_CAST(SUBSTRING(h__id_card__s, 7, 4) || '-' || SUBSTRING(h__id_card__s, 11, 2) || '-' || SUBSTRING(h__id_card__s, 13, 2) AS DATE)
    ) BETWEEN 1900 AND 2100 AS h__id_card__ok
  FROM l0
), l2 AS (
  SELECT
    *,
    CASE
      WHEN h__channel__fast
      THEN NULL
      ELSE CASE h__channel__c
        WHEN 'web'
        THEN 'web'
        WHEN 'h5'
        THEN 'h5'
        WHEN 'wechat_oa'
        THEN 'wechat_oa'
        WHEN 'wechat_mp'
        THEN 'wechat_mp'
        WHEN 'wecom'
        THEN 'wecom'
        WHEN 'douyin'
        THEN 'douyin'
        WHEN 'xhs'
        THEN 'xhs'
        WHEN 'weibo'
        THEN 'weibo'
        WHEN 'meituan'
        THEN 'meituan'
        WHEN 'dianping'
        THEN 'dianping'
        WHEN 'ecommerce'
        THEN 'ecommerce'
        WHEN 'pos'
        THEN 'pos'
        WHEN 'his'
        THEN 'his'
        WHEN 'call_center'
        THEN 'call_center'
        WHEN 'chat'
        THEN 'chat'
        WHEN 'sms'
        THEN 'sms'
        WHEN 'email'
        THEN 'email'
        WHEN 'survey'
        THEN 'survey'
        WHEN 'third_party'
        THEN 'third_party'
        WHEN 'app'
        THEN 'app'
        WHEN 'offline'
        THEN 'offline'
        WHEN '官网'
        THEN 'web'
        WHEN '网站'
        THEN 'web'
        WHEN 'website'
        THEN 'web'
        WHEN 'pc'
        THEN 'web'
        WHEN '落地页'
        THEN 'h5'
        WHEN 'm站'
        THEN 'h5'
        WHEN '微信'
        THEN 'wechat_oa'
        WHEN '公众号'
        THEN 'wechat_oa'
        WHEN '微信公众号'
        THEN 'wechat_oa'
        WHEN 'wechat'
        THEN 'wechat_oa'
        WHEN '小程序'
        THEN 'wechat_mp'
        WHEN '微信小程序'
        THEN 'wechat_mp'
        WHEN 'miniprogram'
        THEN 'wechat_mp'
        WHEN '企业微信'
        THEN 'wecom'
        WHEN '企微'
        THEN 'wecom'
        WHEN 'wework'
        THEN 'wecom'
        WHEN '抖音'
        THEN 'douyin'
        WHEN 'tiktok'
        THEN 'douyin'
        WHEN 'dy'
        THEN 'douyin'
        WHEN '小红书'
        THEN 'xhs'
        WHEN '红书'
        THEN 'xhs'
        WHEN 'xiaohongshu'
        THEN 'xhs'
        WHEN 'red'
        THEN 'xhs'
        WHEN '微博'
        THEN 'weibo'
        WHEN '美团'
        THEN 'meituan'
        WHEN '大众点评'
        THEN 'dianping'
        WHEN '点评'
        THEN 'dianping'
        WHEN '天猫'
        THEN 'ecommerce'
        WHEN '京东'
        THEN 'ecommerce'
        WHEN '有赞'
        THEN 'ecommerce'
        WHEN '电商'
        THEN 'ecommerce'
        WHEN 'tmall'
        THEN 'ecommerce'
        WHEN 'jd'
        THEN 'ecommerce'
        WHEN 'youzan'
        THEN 'ecommerce'
        WHEN '门店'
        THEN 'pos'
        WHEN '收银'
        THEN 'pos'
        WHEN '到店'
        THEN 'offline'
        WHEN '线下'
        THEN 'offline'
        WHEN 'store'
        THEN 'pos'
        WHEN '诊所系统'
        THEN 'his'
        WHEN '电话'
        THEN 'call_center'
        WHEN '呼叫中心'
        THEN 'call_center'
        WHEN '400'
        THEN 'call_center'
        WHEN 'callcenter'
        THEN 'call_center'
        WHEN '在线客服'
        THEN 'chat'
        WHEN '客服'
        THEN 'chat'
        WHEN 'livechat'
        THEN 'chat'
        WHEN '短信'
        THEN 'sms'
        WHEN '邮件'
        THEN 'email'
        WHEN '问卷'
        THEN 'survey'
        WHEN '第三方'
        THEN 'third_party'
        WHEN 'ios'
        THEN 'app'
        WHEN 'android'
        THEN 'app'
        ELSE NULL
      END
    END AS h__channel__value,
    CASE
      WHEN h__score__fast
      THEN NULL
      ELSE CASE
        WHEN h__score__s RLIKE '^[+-]?[0-9]{1,10}(\\.0*)?$'
        THEN TRY_CAST(REGEXP_REPLACE(h__score__s, '\\.0*$', '') AS INT)
      END
    END AS h__score__value,
    CASE
      WHEN h__submitted_at__fast
      THEN NULL
      ELSE CASE
        WHEN (
          h__submitted_at__s IS NULL
          OR LOWER(h__submitted_at__s) IN ('', '-', '--', '—', 'null', 'none', 'n/a', 'na', 'nan', 'undefined', '无数据')
        )
        THEN NULL
        WHEN h__submitted_at__s RLIKE '^\\d{4}-\\d{2}-\\d{2}( ([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d)?$'
        THEN 'fast'
        WHEN h__submitted_at__s RLIKE '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$'
        THEN 'separated'
        WHEN h__submitted_at__s RLIKE '^(\\d{4})(\\d{2})(\\d{2})(?:T? *(\\d{2})(\\d{2})(\\d{2})?)?$'
        THEN 'compact'
        WHEN h__submitted_at__s RLIKE '^\\d{5}(\\.\\d{1,9})?$'
        THEN 'excel'
        WHEN h__submitted_at__s RLIKE '^[0-9]{9,10}$'
        THEN 'epoch_s'
        WHEN h__submitted_at__s RLIKE '^[0-9]{13}$'
        THEN 'epoch_ms'
        ELSE 'unparseable'
      END
    END AS h__submitted_at__shape,
    CASE
      WHEN h__gender__fast
      THEN NULL
      ELSE CASE
        WHEN h__gender__g IN ('男', '男性', '男士', '先生', 'm', 'male', 'man', '1')
        THEN 'M'
        WHEN h__gender__g IN ('女', '女性', '女士', '小姐', 'f', 'female', 'woman', '2')
        THEN 'F'
      END
    END AS h__gender__value,
    CASE
      WHEN h__phone__fast
      THEN NULL
      ELSE REGEXP_EXTRACT(h__phone__d, '^(?:\\+86|0086|86)?(1[0-9]{10})$')
    END AS h__phone__m,
    CASE WHEN h__id_card__ok THEN MECDP_ID_CARD_HASH(h__id_card__s) END AS h__id_card__value
  FROM l1
), l3 AS (
  SELECT
    *,
    CASE
      WHEN h__submitted_at__fast
      THEN NULL
      ELSE CASE h__submitted_at__shape
        WHEN 'fast'
        THEN TRY_CAST(CASE
          WHEN LENGTH(h__submitted_at__s) = 10
          THEN h__submitted_at__s || ' 00:00:00'
          ELSE h__submitted_at__s
        END AS TIMESTAMP_NTZ)
        WHEN 'separated'
        THEN TRY_CAST(REGEXP_EXTRACT(
          h__submitted_at__s,
          '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$'
        ) || '-' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
            2
          ),
          2,
          '0'
        ) || '-' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
            3
          ),
          2,
          '0'
        ) || ' ' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
            4
          ),
          2,
          '0'
        ) || ':' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
            5
          ),
          2,
          '0'
        ) || ':' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
            6
          ),
          2,
          '0'
        ) || CASE
          WHEN REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
            7
          ) <> ''
          THEN '.' || REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
            7
          )
          ELSE ''
        END AS TIMESTAMP_NTZ)
        WHEN 'compact'
        THEN TRY_CAST(REGEXP_EXTRACT(h__submitted_at__s, '^(\\d{4})(\\d{2})(\\d{2})(?:T? *(\\d{2})(\\d{2})(\\d{2})?)?$') || '-' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})(\\d{2})(\\d{2})(?:T? *(\\d{2})(\\d{2})(\\d{2})?)?$',
            2
          ),
          2,
          '0'
        ) || '-' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})(\\d{2})(\\d{2})(?:T? *(\\d{2})(\\d{2})(\\d{2})?)?$',
            3
          ),
          2,
          '0'
        ) || ' ' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})(\\d{2})(\\d{2})(?:T? *(\\d{2})(\\d{2})(\\d{2})?)?$',
            4
          ),
          2,
          '0'
        ) || ':' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})(\\d{2})(\\d{2})(?:T? *(\\d{2})(\\d{2})(\\d{2})?)?$',
            5
          ),
          2,
          '0'
        ) || ':' || LPAD(
          REGEXP_EXTRACT(
            h__submitted_at__s,
            '^(\\d{4})(\\d{2})(\\d{2})(?:T? *(\\d{2})(\\d{2})(\\d{2})?)?$',
            6
          ),
          2,
          '0'
        ) AS TIMESTAMP_NTZ)
        WHEN 'excel'
        THEN DATE_ADD(
          MICROSECOND,
          CAST((
            CAST(ROUND(TRY_CAST(h__submitted_at__s AS DECIMAL(38, 9)) * 86400, 0) AS BIGINT) * 1000000
          ) AS BIGINT),
          (
            CAST('1899-12-30 00:00:00' AS TIMESTAMP_NTZ)
          )
        )
        WHEN 'epoch_s'
        THEN DATE_ADD(
          MICROSECOND,
          CAST((
            CAST(h__submitted_at__s AS BIGINT) * 1000000
          ) AS BIGINT),
          (
            CAST('1970-01-01 08:00:00' AS TIMESTAMP_NTZ)
          )
        )
        WHEN 'epoch_ms'
        THEN DATE_ADD(
          MICROSECOND,
          CAST((
            CAST(h__submitted_at__s AS BIGINT) * 1000
          ) AS BIGINT),
          (
            CAST('1970-01-01 08:00:00' AS TIMESTAMP_NTZ)
          )
        )
      END
    END AS h__submitted_at__local,
    CASE
      WHEN h__submitted_at__fast
      THEN NULL
      ELSE CASE
        WHEN h__submitted_at__shape <> 'separated'
        OR REGEXP_EXTRACT(
          h__submitted_at__s,
          '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
          8
        ) = ''
        THEN 480
        WHEN REGEXP_EXTRACT(
          h__submitted_at__s,
          '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
          8
        ) = 'Z'
        THEN 0
        ELSE (
          CASE
            WHEN LEFT(
              REGEXP_EXTRACT(
                h__submitted_at__s,
                '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
                8
              ),
              1
            ) = '-'
            THEN -1
            ELSE 1
          END
        ) * (
          TRY_CAST(SUBSTRING(
            REGEXP_EXTRACT(
              h__submitted_at__s,
              '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
              8
            ),
            2,
            2
          ) AS INT) * 60 + TRY_CAST(RIGHT(
            REGEXP_EXTRACT(
              h__submitted_at__s,
              '^(\\d{4})[-/.年](\\d{1,2})[-/.月](\\d{1,2})日?(?:(?:T| *)([01]?\\d|2[0-3])[:时点]([0-5]?\\d)(?:[:分]([0-5]?\\d)(?:\\.(\\d{1,6}))?)?秒?)? *(Z|[+-]\\d{2}:?\\d{2})?$',
              8
            ),
            2
          ) AS INT)
        )
      END
    END AS h__submitted_at__offset,
    CASE
      WHEN h__phone__fast
      THEN NULL
      ELSE CASE
        WHEN h__phone__d IS NULL OR h__phone__d = ''
        THEN NULL
        WHEN h__phone__m RLIKE '^(?:1(?:610\\d|740[0-5])\\d{6}|1(?:[38]\\d|4[57]|[59][0-35-9]|6[25-7]|7[0-35-8])\\d{8})$'
        THEN '+86' || h__phone__m
        WHEN h__phone__d RLIKE '^\\+?[0-9]{3,20}$'
        THEN MECDP_PHONE_E164(CASE WHEN h__phone__d RLIKE '^\\+?[0-9]{3,20}$' THEN h__phone__d END)
      END
    END AS h__phone__value
  FROM l2
), l4 AS (
  SELECT
    *,
    CASE
      WHEN h__submitted_at__fast
      THEN NULL
      ELSE CASE
        WHEN YEAR(h__submitted_at__local) BETWEEN 1900 AND 2100
        THEN DATE_ADD(
          MICROSECOND,
          CAST((
            -CAST(h__submitted_at__offset AS BIGINT) * 60000000
          ) AS BIGINT),
          (
            h__submitted_at__local
          )
        )
      END
    END AS h__submitted_at__value
  FROM l3
), typed AS (
  SELECT
    _row,
    _ref,
    r__response_no,
    r__channel,
    r__store_code,
    r__score,
    r__text,
    r__submitted_at,
    r__gender,
    r__phone,
    r__id_card,
    CASE WHEN h__response_no__fast THEN r__response_no ELSE h__response_no__value END AS v__response_no,
    CASE WHEN h__response_no__fast THEN NULL ELSE CAST(NULL AS STRING) END AS e__response_no,
    CASE
      WHEN h__channel__fast
      THEN CASE r__channel
        WHEN 'web'
        THEN 'web'
        WHEN 'h5'
        THEN 'h5'
        WHEN 'wechat_oa'
        THEN 'wechat_oa'
        WHEN 'wechat_mp'
        THEN 'wechat_mp'
        WHEN 'wecom'
        THEN 'wecom'
        WHEN 'douyin'
        THEN 'douyin'
        WHEN 'xhs'
        THEN 'xhs'
        WHEN 'weibo'
        THEN 'weibo'
        WHEN 'meituan'
        THEN 'meituan'
        WHEN 'dianping'
        THEN 'dianping'
        WHEN 'ecommerce'
        THEN 'ecommerce'
        WHEN 'pos'
        THEN 'pos'
        WHEN 'his'
        THEN 'his'
        WHEN 'call_center'
        THEN 'call_center'
        WHEN 'chat'
        THEN 'chat'
        WHEN 'sms'
        THEN 'sms'
        WHEN 'email'
        THEN 'email'
        WHEN 'survey'
        THEN 'survey'
        WHEN 'third_party'
        THEN 'third_party'
        WHEN 'app'
        THEN 'app'
        WHEN 'offline'
        THEN 'offline'
        WHEN '官网'
        THEN 'web'
        WHEN '网站'
        THEN 'web'
        WHEN 'website'
        THEN 'web'
        WHEN 'pc'
        THEN 'web'
        WHEN '落地页'
        THEN 'h5'
        WHEN 'm站'
        THEN 'h5'
        WHEN '微信'
        THEN 'wechat_oa'
        WHEN '公众号'
        THEN 'wechat_oa'
        WHEN '微信公众号'
        THEN 'wechat_oa'
        WHEN 'wechat'
        THEN 'wechat_oa'
        WHEN '小程序'
        THEN 'wechat_mp'
        WHEN '微信小程序'
        THEN 'wechat_mp'
        WHEN 'miniprogram'
        THEN 'wechat_mp'
        WHEN '企业微信'
        THEN 'wecom'
        WHEN '企微'
        THEN 'wecom'
        WHEN 'wework'
        THEN 'wecom'
        WHEN '抖音'
        THEN 'douyin'
        WHEN 'tiktok'
        THEN 'douyin'
        WHEN 'dy'
        THEN 'douyin'
        WHEN '小红书'
        THEN 'xhs'
        WHEN '红书'
        THEN 'xhs'
        WHEN 'xiaohongshu'
        THEN 'xhs'
        WHEN 'red'
        THEN 'xhs'
        WHEN '微博'
        THEN 'weibo'
        WHEN '美团'
        THEN 'meituan'
        WHEN '大众点评'
        THEN 'dianping'
        WHEN '点评'
        THEN 'dianping'
        WHEN '天猫'
        THEN 'ecommerce'
        WHEN '京东'
        THEN 'ecommerce'
        WHEN '有赞'
        THEN 'ecommerce'
        WHEN '电商'
        THEN 'ecommerce'
        WHEN 'tmall'
        THEN 'ecommerce'
        WHEN 'jd'
        THEN 'ecommerce'
        WHEN 'youzan'
        THEN 'ecommerce'
        WHEN '门店'
        THEN 'pos'
        WHEN '收银'
        THEN 'pos'
        WHEN '到店'
        THEN 'offline'
        WHEN '线下'
        THEN 'offline'
        WHEN 'store'
        THEN 'pos'
        WHEN '诊所系统'
        THEN 'his'
        WHEN '电话'
        THEN 'call_center'
        WHEN '呼叫中心'
        THEN 'call_center'
        WHEN '400'
        THEN 'call_center'
        WHEN 'callcenter'
        THEN 'call_center'
        WHEN '在线客服'
        THEN 'chat'
        WHEN '客服'
        THEN 'chat'
        WHEN 'livechat'
        THEN 'chat'
        WHEN '短信'
        THEN 'sms'
        WHEN '邮件'
        THEN 'email'
        WHEN '问卷'
        THEN 'survey'
        WHEN '第三方'
        THEN 'third_party'
        WHEN 'ios'
        THEN 'app'
        WHEN 'android'
        THEN 'app'
        ELSE NULL
      END
      ELSE h__channel__value
    END AS v__channel,
    CASE
      WHEN h__channel__fast
      THEN NULL
      ELSE CASE
        WHEN NOT (
          h__channel__c IS NULL
          OR LOWER(h__channel__c) IN ('', '-', '--', '—', 'null', 'none', 'n/a', 'na', 'nan', 'undefined', '无数据')
        )
        AND h__channel__value IS NULL
        THEN 'channel.unknown'
      END
    END AS e__channel,
    CASE WHEN h__store_code__fast THEN r__store_code ELSE h__store_code__value END AS v__store_code,
    CASE WHEN h__store_code__fast THEN NULL ELSE CAST(NULL AS STRING) END AS e__store_code,
    CASE WHEN h__score__fast THEN CAST(r__score AS INT) ELSE h__score__value END AS v__score,
    CASE
      WHEN h__score__fast
      THEN NULL
      ELSE CASE
        WHEN NOT (
          h__score__s IS NULL
          OR LOWER(h__score__s) IN ('', '-', '--', '—', 'null', 'none', 'n/a', 'na', 'nan', 'undefined', '无数据')
        )
        AND h__score__value IS NULL
        THEN 'integer.invalid'
      END
    END AS e__score,
    CASE WHEN h__text__fast THEN r__text ELSE h__text__value END AS v__text,
    CASE WHEN h__text__fast THEN NULL ELSE CAST(NULL AS STRING) END AS e__text,
    CASE
      WHEN h__submitted_at__fast
      THEN DATE_ADD(
        MICROSECOND,
        CAST((
          -28800000000
        ) AS BIGINT),
        (
          TRY_CAST(REPLACE(r__submitted_at, '/', '-') AS TIMESTAMP_NTZ)
        )
      )
      ELSE h__submitted_at__value
    END AS v__submitted_at,
    COALESCE(
      CASE
        WHEN h__submitted_at__fast
        THEN NULL
        ELSE CASE
          WHEN h__submitted_at__shape IS NULL
          THEN NULL
          WHEN h__submitted_at__shape = 'unparseable'
          THEN 'timestamp.unparseable'
          WHEN h__submitted_at__local IS NULL
          THEN 'timestamp.invalid'
          WHEN h__submitted_at__value IS NULL
          THEN 'timestamp.out_of_range'
        END
      END,
      CASE
        WHEN CASE
          WHEN h__submitted_at__fast
          THEN DATE_ADD(
            MICROSECOND,
            CAST((
              -28800000000
            ) AS BIGINT),
            (
              TRY_CAST(REPLACE(r__submitted_at, '/', '-') AS TIMESTAMP_NTZ)
            )
          )
          ELSE h__submitted_at__value
        END IS NULL
        THEN 'timestamp.required'
      END
    ) AS e__submitted_at,
    CASE
      WHEN h__gender__fast
      THEN CASE
        WHEN r__gender IN ('男', '男性', '男士', '先生', 'm', 'male', 'man', '1')
        THEN 'M'
        ELSE 'F'
      END
      ELSE h__gender__value
    END AS v__gender,
    CASE
      WHEN h__gender__fast
      THEN NULL
      ELSE CASE
        WHEN h__gender__g IS NULL
        OR NOT h__gender__value IS NULL
        OR h__gender__g IN (
          '未知',
          'unknown',
          '空',
          '保密',
          '未说明',
          'u',
          '0',
          '9',
          '',
          '-',
          '--',
          '—',
          'null',
          'none',
          'n/a',
          'na',
          'nan',
          'undefined',
          '无数据'
        )
        THEN NULL
        ELSE 'gender.unknown'
      END
    END AS e__gender,
    CASE WHEN h__phone__fast THEN '+86' || r__phone ELSE h__phone__value END AS v__phone,
    CASE
      WHEN h__phone__fast
      THEN NULL
      ELSE CASE WHEN h__phone__value IS NULL AND h__phone__d <> '' THEN 'phone.invalid' END
    END AS e__phone,
    h__id_card__value AS v__id_card,
    CASE
      WHEN NOT (
        h__id_card__s IS NULL
        OR LOWER(h__id_card__s) IN ('', '-', '--', '—', 'null', 'none', 'n/a', 'na', 'nan', 'undefined', '无数据')
      )
      AND NOT COALESCE(h__id_card__ok, FALSE)
      THEN 'id_card.invalid'
    END AS e__id_card,
    CAST(NULL AS STRING) AS e__record
  FROM l4
), checked AS (
  SELECT
    *,
    CASE
      WHEN NOT v__response_no IS NULL
      THEN 'survey_q1' || ':' || v__response_no
      ELSE 'survey_q1' || ':' || SHA2(
        COALESCE(CAST(LENGTH(r__response_no) AS STRING) || ':' || r__response_no, '-') || ',' || COALESCE(CAST(LENGTH(r__channel) AS STRING) || ':' || r__channel, '-') || ',' || COALESCE(CAST(LENGTH(r__store_code) AS STRING) || ':' || r__store_code, '-') || ',' || '-' || ',' || '-' || ',' || COALESCE(CAST(LENGTH(r__score) AS STRING) || ':' || r__score, '-') || ',' || COALESCE(CAST(LENGTH(r__text) AS STRING) || ':' || r__text, '-') || ',' || COALESCE(CAST(LENGTH(r__submitted_at) AS STRING) || ':' || r__submitted_at, '-') || ',' || '-' || ',' || COALESCE(CAST(LENGTH(r__gender) AS STRING) || ':' || r__gender, '-') || ',' || '-' || ',' || '-' || ',' || COALESCE(CAST(LENGTH(r__phone) AS STRING) || ':' || r__phone, '-') || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || '-' || ',' || COALESCE(CAST(LENGTH(r__id_card) AS STRING) || ':' || r__id_card, '-') || ',' || '-',
        256
      )
    END AS record_id,
    NOT e__response_no IS NULL
    OR NOT e__channel IS NULL
    OR NOT e__store_code IS NULL
    OR NOT e__score IS NULL
    OR NOT e__text IS NULL
    OR NOT e__submitted_at IS NULL
    OR NOT e__gender IS NULL
    OR NOT e__phone IS NULL
    OR NOT e__id_card IS NULL
    OR NOT e__record IS NULL AS _bad
  FROM typed
)
SELECT
  _row,
  _ref,
  record_id,
  _bad,
  v__response_no,
  v__channel,
  v__store_code,
  v__score,
  v__text,
  v__submitted_at,
  v__gender,
  v__phone,
  v__id_card,
  e__response_no,
  e__channel,
  e__store_code,
  e__score,
  e__text,
  e__submitted_at,
  e__gender,
  e__phone,
  e__id_card,
  e__record,
  CASE WHEN _bad THEN r__response_no END AS r__response_no,
  CASE WHEN _bad THEN r__channel END AS r__channel,
  CASE WHEN _bad THEN r__store_code END AS r__store_code,
  CASE WHEN _bad THEN r__score END AS r__score,
  CASE WHEN _bad THEN r__text END AS r__text,
  CASE WHEN _bad THEN r__submitted_at END AS r__submitted_at,
  CASE WHEN _bad THEN r__gender END AS r__gender,
  CASE WHEN _bad THEN r__phone END AS r__phone,
  CASE WHEN _bad THEN r__id_card END AS r__id_card
FROM checked;

-- fb_cleaned_dups
SELECT
  record_id,
  MIN(_row) AS first_row
FROM fb_cleaned
WHERE
  NOT _bad
GROUP BY
  record_id
HAVING
  COUNT(*) > 1;

-- fb_records
WITH kept AS (
  SELECT
    c.*
  FROM fb_cleaned AS c
  LEFT JOIN fb_cleaned_dups AS d
    ON c.record_id = d.record_id
  WHERE
    NOT c._bad AND (
      d.first_row IS NULL OR c._row = d.first_row
    )
)
SELECT
  record_id,
  _row,
  _ref,
  v__response_no AS response_no,
  v__channel AS channel,
  v__store_code AS store_code,
  CAST(NULL AS STRING) AS item_code,
  CAST(NULL AS STRING) AS survey,
  v__score AS score,
  v__text AS text,
  v__submitted_at AS submitted_at,
  'survey_q1' AS source_id,
  v__submitted_at AS observed_at
FROM kept;

-- fb_contacts
WITH kept AS (
  SELECT
    c.*
  FROM fb_cleaned AS c
  LEFT JOIN fb_cleaned_dups AS d
    ON c.record_id = d.record_id
  WHERE
    NOT c._bad AND (
      d.first_row IS NULL OR c._row = d.first_row
    )
)
SELECT
  record_id,
  'feedback' AS record_kind,
  'survey_q1' AS source_id,
  CAST(NULL AS STRING) AS name,
  v__gender AS gender,
  CAST(NULL AS DATE) AS birthday,
  CAST(NULL AS STRING) AS city,
  v__store_code AS store_code,
  v__submitted_at AS observed_at
FROM kept
WHERE
  NOT v__gender IS NULL OR NOT v__phone IS NULL OR NOT v__id_card IS NULL;

-- fb_identifiers
WITH kept AS (
  SELECT
    c.*
  FROM fb_cleaned AS c
  LEFT JOIN fb_cleaned_dups AS d
    ON c.record_id = d.record_id
  WHERE
    NOT c._bad AND (
      d.first_row IS NULL OR c._row = d.first_row
    )
)
SELECT
  record_id,
  'feedback' AS record_kind,
  'survey_q1' AS source_id,
  id_type,
  id_value,
  observed_at
FROM (
  SELECT
    record_id,
    'phone' AS id_type,
    v__phone AS id_value,
    v__submitted_at AS observed_at
  FROM kept
  WHERE
    NOT v__phone IS NULL
  UNION ALL
  SELECT
    record_id,
    'id_card_hash' AS id_type,
    v__id_card AS id_value,
    v__submitted_at AS observed_at
  FROM kept
  WHERE
    NOT v__id_card IS NULL
) AS i;

-- fb_rejects
WITH bad AS (
  SELECT
    *
  FROM fb_cleaned
  WHERE
    _bad
)
SELECT
  _row,
  _ref,
  'response_no' AS field,
  r__response_no AS value,
  e__response_no AS rule,
  CASE
    WHEN e__response_no LIKE '%.required'
    THEN 'field \'response_no\' is required but empty'
    ELSE 'field \'response_no\': value \'' || COALESCE(r__response_no, '') || '\' ' || 'is invalid'
  END || ' (' || e__response_no || ')' AS reason
FROM bad
WHERE
  NOT e__response_no IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  'channel' AS field,
  r__channel AS value,
  e__channel AS rule,
  CASE
    WHEN e__channel LIKE '%.required'
    THEN 'field \'channel\' is required but empty'
    ELSE 'field \'channel\': value \'' || COALESCE(r__channel, '') || '\' ' || CASE e__channel
      WHEN 'channel.unknown'
      THEN 'is not a known channel'
      ELSE 'is invalid'
    END
  END || ' (' || e__channel || ')' AS reason
FROM bad
WHERE
  NOT e__channel IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  'store_code' AS field,
  r__store_code AS value,
  e__store_code AS rule,
  CASE
    WHEN e__store_code LIKE '%.required'
    THEN 'field \'store_code\' is required but empty'
    ELSE 'field \'store_code\': value \'' || COALESCE(r__store_code, '') || '\' ' || 'is invalid'
  END || ' (' || e__store_code || ')' AS reason
FROM bad
WHERE
  NOT e__store_code IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  'score' AS field,
  r__score AS value,
  e__score AS rule,
  CASE
    WHEN e__score LIKE '%.required'
    THEN 'field \'score\' is required but empty'
    ELSE 'field \'score\': value \'' || COALESCE(r__score, '') || '\' ' || CASE e__score
      WHEN 'integer.invalid'
      THEN 'is not a whole number'
      ELSE 'is invalid'
    END
  END || ' (' || e__score || ')' AS reason
FROM bad
WHERE
  NOT e__score IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  'text' AS field,
  r__text AS value,
  e__text AS rule,
  CASE
    WHEN e__text LIKE '%.required'
    THEN 'field \'text\' is required but empty'
    ELSE 'field \'text\': value \'' || COALESCE(r__text, '') || '\' ' || 'is invalid'
  END || ' (' || e__text || ')' AS reason
FROM bad
WHERE
  NOT e__text IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  'submitted_at' AS field,
  r__submitted_at AS value,
  e__submitted_at AS rule,
  CASE
    WHEN e__submitted_at LIKE '%.required'
    THEN 'field \'submitted_at\' is required but empty'
    ELSE 'field \'submitted_at\': value \'' || COALESCE(r__submitted_at, '') || '\' ' || CASE e__submitted_at
      WHEN 'timestamp.unparseable'
      THEN 'is not a date/time in a known format'
      WHEN 'timestamp.invalid'
      THEN 'is not a real calendar date/time'
      WHEN 'timestamp.out_of_range'
      THEN 'is outside the plausible years 1900-2100'
      ELSE 'is invalid'
    END
  END || ' (' || e__submitted_at || ')' AS reason
FROM bad
WHERE
  NOT e__submitted_at IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  'gender' AS field,
  r__gender AS value,
  e__gender AS rule,
  CASE
    WHEN e__gender LIKE '%.required'
    THEN 'field \'gender\' is required but empty'
    ELSE 'field \'gender\': value \'' || COALESCE(r__gender, '') || '\' ' || CASE e__gender
      WHEN 'gender.unknown'
      THEN 'is not a known gender (男/女/M/F/1/2)'
      ELSE 'is invalid'
    END
  END || ' (' || e__gender || ')' AS reason
FROM bad
WHERE
  NOT e__gender IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  'phone' AS field,
  r__phone AS value,
  e__phone AS rule,
  CASE
    WHEN e__phone LIKE '%.required'
    THEN 'field \'phone\' is required but empty'
    ELSE 'field \'phone\': value \'' || COALESCE(r__phone, '') || '\' ' || CASE e__phone
      WHEN 'phone.invalid'
      THEN 'is not a valid phone number'
      ELSE 'is invalid'
    END
  END || ' (' || e__phone || ')' AS reason
FROM bad
WHERE
  NOT e__phone IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  'id_card' AS field,
  CASE
    WHEN LENGTH(r__id_card) > 8
    THEN LEFT(r__id_card, 4) || REPEAT('*', LENGTH(r__id_card) - 8) || RIGHT(r__id_card, 4)
    ELSE REPEAT('*', LENGTH(r__id_card))
  END AS value,
  e__id_card AS rule,
  CASE
    WHEN e__id_card LIKE '%.required'
    THEN 'field \'id_card\' is required but empty'
    ELSE 'field \'id_card\': value \'' || COALESCE(
      CASE
        WHEN LENGTH(r__id_card) > 8
        THEN LEFT(r__id_card, 4) || REPEAT('*', LENGTH(r__id_card) - 8) || RIGHT(r__id_card, 4)
        ELSE REPEAT('*', LENGTH(r__id_card))
      END,
      ''
    ) || '\' ' || CASE e__id_card
      WHEN 'id_card.invalid'
      THEN 'is not a valid resident id-card number'
      ELSE 'is invalid'
    END
  END || ' (' || e__id_card || ')' AS reason
FROM bad
WHERE
  NOT e__id_card IS NULL
UNION ALL
SELECT
  _row,
  _ref,
  CAST(NULL AS STRING) AS field,
  CAST(NULL AS STRING) AS value,
  e__record AS rule,
  'the record names no one: no identifier (phone, phone2, email, wechat_unionid, wechat_openid, wecom_external_userid, douyin_open_id, xhs_user_id, weibo_uid, idfa, oaid, imei, android_id, member_no, id_card, customer_no) has a value (' || e__record || ')' AS reason
FROM bad
WHERE
  NOT e__record IS NULL;
